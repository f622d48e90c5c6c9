// The command line as a person uses it, against the compiled binary: help in every
// form on every face and ctl command, usage errors with the command's usage line and
// exit 2, failures as one line and exit 1 (the stack only with --debug), crictl's
// output formats on a live daemon, and the shell completion scripts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { FACES } from "../../src/cli/faces.ts";
import { CTL_COMMANDS } from "../../src/ctl/commands.ts";
import { containerConfig, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { CRIB_BIN, type CribInstance, runCrib, shutdownCrib, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";
import { ContainerState } from "../../src/protocol/types.ts";

const faces = FACES.filter((f) => !f.hidden);
const commands = CTL_COMMANDS.filter((c) => !c.hidden);
/** A failure printed as a person should see it: one line, no stack frames of the bundle. */
const oneLine = (stderr: string) => {
  expect(stderr.split("\n").filter((l) => l !== "")).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr).not.toContain("$bunfs");
};

describe("help", () => {
  test("every face: --help, -h and crib help FACE print the same help, exit 0", async () => {
    for (const f of faces) {
      const forms = [[f.name, "--help"], [f.name, "-h"], ["help", f.name]];
      const runs = await Promise.all(forms.map((a) => runCrib(a)));
      for (const [i, r] of runs.entries()) {
        expect({ form: forms[i], code: r.code, stderr: r.stderr }).toEqual({ form: forms[i], code: 0, stderr: "" });
        expect(r.stdout).toBe(runs[0]!.stdout);
      }
      expect(runs[0]!.stdout).toStartWith(`crib ${f.name}: ${f.summary}\n`);
      expect(runs[0]!.stdout).toContain("Examples:\n");
      for (const flag of f.flags) expect(runs[0]!.stdout).toContain(`--${flag.name}`);
    }
  });

  test("every ctl command: --help, -h (also after arguments), crib ctl help CMD, crib help ctl CMD", async () => {
    for (const c of commands) {
      const forms = [["ctl", c.name, "--help"], ["ctl", c.name, "-h"], ["ctl", "help", c.name], ["help", "ctl", c.name]];
      // After an argument too, except where the arguments are a command line of their own (exec).
      if (!c.stopAtPositional) forms.push(["ctl", c.name, "some-id", "--help"]);
      const runs = await Promise.all(forms.map((a) => runCrib(a)));
      for (const [i, r] of runs.entries()) {
        expect({ form: forms[i], code: r.code, stderr: r.stderr }).toEqual({ form: forms[i], code: 0, stderr: "" });
        expect(r.stdout).toBe(runs[0]!.stdout);
      }
      const help = runs[0]!.stdout;
      expect(help).toStartWith(`crib ctl ${c.name}: ${c.summary}\n\nUsage:\n  crib ctl ${c.name}`);
      for (const flag of c.flags) expect(help).toContain(`--${flag.name}`);
      expect(help).toContain(`Examples:\n  ${c.examples[0]}`);
    }
  });

  test("crib, crib --help, crib ctl and crib ctl --help list the commands", async () => {
    const top = await runCrib(["--help"]);
    expect(top.code).toBe(0);
    for (const f of faces) expect(top.stdout).toContain(`  ${f.name} `);
    expect((await runCrib([])).code).toBe(2);
    const ctl = await runCrib(["ctl", "--help"]);
    expect(ctl.code).toBe(0);
    for (const c of commands) expect(ctl.stdout).toContain(`  ${c.name} `);
    expect(ctl.stdout).not.toContain("__complete");
    expect((await runCrib(["ctl"])).code).toBe(2);
  });

  test("exec's own command line keeps its --help: it is not crib's", async () => {
    // No daemon here: the exec is attempted (and fails to connect) instead of printing help.
    const t = tempConfig();
    const r = await runCrib(["ctl", "-r", `unix://${t.socket}`, "exec", "ctr", "ls", "--help"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("crib ctl exec: Exec: UNAVAILABLE: no crib daemon at");
  });
});

describe("usage errors", () => {
  test("an unknown flag on any ctl command prints that command's usage line and exits 2", async () => {
    const runs = await Promise.all(commands.map((c) => runCrib(["ctl", "-r", "unix:///nonexistent.sock", c.name, "--bogus"])));
    for (const [i, r] of runs.entries()) {
      const c = commands[i]!;
      expect({ c: c.name, code: r.code, stdout: r.stdout }).toEqual({ c: c.name, code: 2, stdout: "" });
      expect(r.stderr).toBe(`crib ctl ${c.name}: unknown flag --bogus\nUsage: crib ctl ${c.name} ${c.args}`.trimEnd() + `\nRun "crib ctl ${c.name} --help" for its flags and examples.\n`);
    }
  });

  test("faces, missing arguments, bad values and unknown commands: usage line, exit 2", async () => {
    const serve = await runCrib(["serve", "--bogus"]);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain("crib serve: unknown flag --bogus\nUsage: crib serve [--config FILE]\n");
    const inspect = await runCrib(["ctl", "-r", "unix:///nonexistent.sock", "inspect"]);
    expect(inspect.code).toBe(2);
    expect(inspect.stderr).toContain("Usage: crib ctl inspect [flags] CONTAINER-ID...");
    const format = await runCrib(["ctl", "ps", "-o", "xml"]);
    expect(format.code).toBe(2);
    expect(format.stderr).toStartWith('crib ctl ps: --output must be one of table, json, yaml (got "xml")\nUsage: crib ctl ps [flags]\n');
    const unknown = await runCrib(["ctl", "frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toStartWith('crib ctl: unknown command "frobnicate"\n');
    expect((await runCrib(["help", "frobnicate"])).code).toBe(2);
    expect((await runCrib(["completion", "tcsh"])).code).toBe(2);
  });
});

describe("failures are one line; the stack only with --debug", () => {
  test("no daemon: the socket is named and the exit code is 1", async () => {
    const t = tempConfig();
    const r = await runCrib(["ctl", "-r", `unix://${t.socket}`, "ps"]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toBe(`crib ctl ps: ListContainers: UNAVAILABLE: no crib daemon at ${t.socket}: the socket does not exist (is crib serve running? -r ENDPOINT or --config FILE picks another)\n`);
  });

  test("the daemon's fatal start-up errors are one line too", async () => {
    const r = await runCrib(["serve", "--config", "/nonexistent/crib.yaml"]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toStartWith("crib serve: /nonexistent/crib.yaml: cannot read config");
  });
});

describe("against a live daemon", () => {
  let reg: StartedRegistry;
  let crib: CribInstance;
  let image: PushedImage;
  let ep: string[];
  let podId = "";
  let ctrId = "";

  beforeAll(async () => {
    reg = await startRegistry();
    image = await pushImage(reg, "cli/busybox:1", { layers: [busyboxLayer()] });
    crib = await startCrib();
    ep = ["ctl", "-r", `unix://${crib.socket}`];
    const pulled = await runCrib([...ep, "pull", "-q", image.ref], { timeoutMs: 120_000 });
    expect(pulled.code).toBe(0);
    ({ podId, id: ctrId } = await runContainer(crib.client, podConfig("clipod"), containerConfig("sleeper", image.ref, ["sleep", "1000"])));
    await waitStatus(crib.client, ctrId, (s) => s.state === ContainerState.CONTAINER_RUNNING);
  });

  afterAll(async () => {
    await shutdownCrib(crib);
    await reg?.stop();
  });

  test("NOT_FOUND: one line naming the command, the call and the code; exit 1", async () => {
    const r = await runCrib([...ep, "inspect", "nosuch"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/^crib ctl inspect: ContainerStatus: NOT_FOUND: .*nosuch/);
  });

  test("--debug (before or after the command) and CRIB_DEBUG=1 add the stack", async () => {
    for (const args of [["ctl", "--debug", "-r", `unix://${crib.socket}`, "inspect", "nosuch"], [...ep, "inspect", "nosuch", "--debug"]]) {
      const r = await runCrib(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toStartWith("crib ctl inspect: ContainerStatus: NOT_FOUND");
      expect(r.stderr).toMatch(/^\s+at /m);
    }
    const env = await runCrib([...ep, "inspectp", "nosuch"], { env: { CRIB_DEBUG: "1" } });
    expect(env.code).toBe(1);
    expect(env.stderr).toMatch(/^\s+at /m);
  });

  test("a registry that cannot be reached: one line with the code, not blamed on the daemon", async () => {
    const r = await runCrib([...ep, "pull", "127.0.0.1:1/nothing/here:1"], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/^crib ctl pull: PullImage: [A-Z_]+: /);
    expect(r.stderr).not.toContain("no crib daemon");
  });

  test("images: -o json/yaml in crictl's shape, -q, --no-trunc", async () => {
    const json = await runCrib([...ep, "images", "-o", "json"]);
    expect(json.code).toBe(0);
    const list = JSON.parse(json.stdout) as { images: { id: string; repoTags: string[]; repoDigests: string[]; size: string; pinned: boolean }[] };
    const img = list.images.find((i) => i.repoTags.includes(image.ref));
    expect(img).toBeDefined();
    expect(img!.size).toMatch(/^\d+$/); // uint64 as a string, as protojson
    expect(parseYaml((await runCrib([...ep, "images", "-o", "yaml"])).stdout)).toEqual(list);
    expect((await runCrib([...ep, "images", "-q"])).stdout.split("\n")).toContain(img!.id);
    const full = (await runCrib([...ep, "images", "--no-trunc"])).stdout;
    expect(full).toContain(img!.id);
    expect((await runCrib([...ep, "images"])).stdout).not.toContain(img!.id);
  });

  test("ps and pods: -o json/yaml, -q, --no-trunc, --state", async () => {
    const ps = JSON.parse((await runCrib([...ep, "ps", "-o", "json"])).stdout) as { containers: { id: string; podSandboxId: string; state: string; createdAt: string; metadata: { name: string } }[] };
    const c = ps.containers.find((x) => x.id === ctrId)!;
    expect(c).toMatchObject({ podSandboxId: podId, state: "CONTAINER_RUNNING", metadata: { name: "sleeper" } });
    expect(c.createdAt).toMatch(/^\d+$/);
    expect(parseYaml((await runCrib([...ep, "ps", "-o", "yaml"])).stdout)).toEqual(ps);
    expect((await runCrib([...ep, "ps", "-q"])).stdout).toBe(`${ctrId}\n`);
    expect((await runCrib([...ep, "ps", "-q", "--state", "exited"])).stdout).toBe("");
    expect((await runCrib([...ep, "ps", "--no-trunc"])).stdout).toContain(ctrId);
    expect((await runCrib([...ep, "ps"])).stdout).toContain(`${ctrId.slice(0, 13)} `);
    const pods = JSON.parse((await runCrib([...ep, "pods", "-o", "json"])).stdout) as { items: { id: string; state: string; metadata: { name: string } }[] };
    expect(pods.items.find((p) => p.id === podId)).toMatchObject({ state: "SANDBOX_READY", metadata: { name: "clipod" } });
    expect((await runCrib([...ep, "pods", "-q"])).stdout).toBe(`${podId}\n`);
    expect(parseYaml((await runCrib([...ep, "pods", "-o", "yaml"])).stdout)).toEqual(pods);
  });

  test("inspect -o yaml and stats -o json", async () => {
    const insp = parseYaml((await runCrib([...ep, "inspect", "-o", "yaml", ctrId])).stdout) as { status: { id: string; state: string } };
    expect(insp.status).toMatchObject({ id: ctrId, state: "CONTAINER_RUNNING" });
    const stats = JSON.parse((await runCrib([...ep, "stats", "-o", "json"])).stdout) as { stats: { attributes: { id: string } }[] };
    expect(stats.stats.map((s) => s.attributes.id)).toContain(ctrId);
  });

  test("completion: bash completes commands, flags, values and ids from the daemon; quiet without one", async () => {
    const script = (await runCrib(["completion", "bash"])).stdout;
    const file = join(tempDir("crib-completion-"), "crib.bash");
    writeFileSync(file, script);
    const complete = async (...words: string[]) => {
      const probe = `source ${file}\nCOMP_WORDS=(${[CRIB_BIN, ...words].map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length}\n_crib\nprintf '%s\\n' "\${COMPREPLY[@]}"\n`;
      const p = Bun.spawn(["bash", "-c", probe], { stdout: "pipe", stderr: "pipe" });
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { words: out.split("\n").filter((l) => l !== ""), stderr: err };
    };
    expect((await complete("ct")).words).toEqual(["ctl"]);
    expect((await complete("ctl", "ins")).words).toEqual(["inspecti", "inspectp", "inspect"]);
    expect((await complete("ctl", "ps", "--no")).words).toEqual(["--no-trunc"]);
    expect((await complete("ctl", "ps", "-o", "")).words).toEqual(["table", "json", "yaml"]);
    expect((await complete("ctl", "-r", `unix://${crib.socket}`, "inspect", "")).words).toEqual([ctrId]);
    expect((await complete("ctl", "-r", `unix://${crib.socket}`, "stopp", "")).words).toEqual([podId]);
    expect((await complete("ctl", "-r", `unix://${crib.socket}`, "rmi", "")).words).toContain(image.ref);
    const none = await complete("ctl", "-r", "unix:///nonexistent/crib.sock", "inspect", "");
    expect(none).toEqual({ words: [], stderr: "" });
  });

  test("completion scripts parse: bash -n always; zsh -n and fish -n where installed", async () => {
    const shells = [["bash", "/bin/bash"], ["zsh", "/usr/bin/zsh"], ["fish", "/usr/bin/fish"]].filter(([, bin]) => existsSync(bin!));
    expect(shells.map(([s]) => s)).toContain("bash");
    for (const [shell, bin] of shells) {
      const r = await runCrib(["completion", shell!]);
      expect(r.code).toBe(0);
      const file = join(tempDir("crib-completion-"), `crib.${shell}`);
      writeFileSync(file, r.stdout);
      const check = Bun.spawnSync([bin!, "-n", file], { stderr: "pipe" });
      expect({ shell, code: check.exitCode, stderr: check.stderr.toString() }).toEqual({ shell, code: 0, stderr: "" });
    }
  });
});
