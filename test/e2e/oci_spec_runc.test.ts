// Specs from buildContainerSpec run for real under runc: user and groups, capabilities,
// RuntimeDefault seccomp, read-only rootfs, masked paths, the oom_score_adj clamp,
// sysctls and the pod files. Needs root and runc; skipped otherwise.
//
// The container is busybox-static with hardlinked applets in a plain directory (no
// overlay: the spec builder does not care what the rootfs is). It gets new namespaces
// of every kind (namespace mode POD with no pinned paths) and a cgroup
// /crib-test-<random>, which `runc delete` removes; afterAll checks nothing is left.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { criType, decodeMessage, encodeMessage } from "../helpers/protobuf_reference.ts";
import type { ContainerConfig, PodSandboxConfig } from "../../src/protocol/types.ts";
import { buildContainerSpec, type ContainerSpecInput } from "../../src/container/spec/build.ts";
import { parseCapabilityMask, readPermittedCapabilities } from "../../src/container/spec/capabilities.ts";
import type { OciSpec } from "../../src/container/spec/oci_types.ts";
import { resolveUser } from "../../src/container/spec/user.ts";

const RUNC = "/usr/sbin/runc";
const BUSYBOX = "/usr/bin/busybox";
const canRun = process.getuid?.() === 0 && existsSync(RUNC) && existsSync(BUSYBOX);
const APPLETS = ["sh", "id", "cat", "echo", "grep", "unshare", "touch", "head", "hostname", "true", "ls"];

let dir = "";
let rootfs = "";
let runcRoot = "";
const cgroupName = `crib-test-${randomBytes(6).toString("hex")}`;
let seq = 0;

function decoded<T>(typeName: string, value: object): T {
  const type = criType(`runtime.v1.${typeName}`);
  return decodeMessage<T>(type, encodeMessage(type, value));
}

beforeAll(() => {
  if (!canRun) return;
  dir = mkdtempSync(join(tmpdir(), "crib-oci-runc-"));
  runcRoot = join(dir, "runc-state");
  rootfs = join(dir, "rootfs");
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp"]) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin/busybox"));
  for (const a of APPLETS) linkSync(join(rootfs, "bin/busybox"), join(rootfs, "bin", a));
  writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
  writeFileSync(join(rootfs, "etc/group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\n");
  for (const [name, text] of [["hosts", "127.0.0.1 localhost\n10.9.8.7 pod-host\n"], ["resolv.conf", "nameserver 10.0.0.10\n"], ["hostname", "pod-host\n"]]) {
    writeFileSync(join(dir, name as string), text as string);
  }
});

afterAll(() => {
  if (!canRun) return;
  // runc delete removes the cgroups; remove any a failed run left behind.
  for (const ctrl of readdirSync("/sys/fs/cgroup")) {
    const p = join("/sys/fs/cgroup", ctrl, cgroupName);
    if (existsSync(p)) {
      try {
        rmdirSync(p);
      } catch {
        // non-empty or not a cgroup hierarchy; nothing more to do
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function baseInput(config: object, sandbox: object = {}): Promise<ContainerSpecInput> {
  const cfg = decoded<ContainerConfig>("ContainerConfig", { metadata: { name: "t" }, image: { image: "busybox" }, ...config });
  const sc = cfg.linux?.security_context ?? null;
  const user = await resolveUser(rootfs, {
    runAsUser: sc?.run_as_user?.value ?? null,
    runAsUsername: sc?.run_as_username ?? "",
    runAsGroup: sc?.run_as_group?.value ?? null,
    imageUser: "",
    supplementalGroups: sc?.supplemental_groups ?? [],
  });
  return {
    containerId: `crib-oci-${process.pid}-${++seq}`,
    sandboxId: "sandbox",
    config: cfg,
    sandbox: decoded<PodSandboxConfig>("PodSandboxConfig", { metadata: { name: "p", namespace: "ns", uid: "u" }, hostname: "pod-host", ...sandbox }),
    image: { user: "", env: ["PATH=/bin"], entrypoint: [], cmd: [], workingDir: "", stopSignal: "" },
    rootfs,
    namespaces: {}, // POD mode without pinned namespaces: new ones of every kind
    cgroupsPath: `/${cgroupName}`,
    user,
    hostname: "pod-host",
    sandboxFiles: { hosts: join(dir, "hosts"), resolvConf: join(dir, "resolv.conf"), hostname: join(dir, "hostname") },
    runtimeCanLowerOomScore: false,
    currentOomScoreAdj: Number(readFileSync("/proc/self/oom_score_adj", "utf8").trim()),
    availableCapabilities: await readPermittedCapabilities(),
    swapSupported: existsSync("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
  };
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `runc run` the spec in the foreground (no TTY), then `runc delete -f`. */
async function run(spec: OciSpec, id: string): Promise<RunResult> {
  const bundle = join(dir, `bundle-${id}`);
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
  try {
    const proc = Bun.spawn([RUNC, "--root", runcRoot, "run", "--bundle", bundle, id], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  } finally {
    Bun.spawnSync([RUNC, "--root", runcRoot, "delete", "--force", id], { stdout: "ignore", stderr: "ignore" });
    rmSync(bundle, { recursive: true, force: true });
  }
}

async function runConfig(config: object, sandbox: object = {}): Promise<RunResult> {
  const input = await baseInput(config, sandbox);
  return run(await buildContainerSpec(input), input.containerId);
}

function capEff(stdout: string): string[] {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(stdout);
  if (m?.[1] === undefined) throw new Error(`no CapEff in ${stdout}`);
  return parseCapabilityMask(m[1]);
}

describe.skipIf(!canRun)("OCI specs under runc", () => {
  test("runs as the resolved uid, gid and groups", async () => {
    const r = await runConfig({
      command: ["/bin/id"],
      linux: { security_context: { run_as_username: "app", supplemental_groups: [3000] } },
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("uid=1000(app) gid=1000(app) groups=1000(app),2000(extra),3000");
  });

  test("runs as a numeric uid/gid absent from /etc/passwd", async () => {
    const r = await runConfig({ command: ["/bin/id", "-u"], linux: { security_context: { run_as_user: { value: 4321 }, run_as_group: { value: 765 } } } });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("4321");
    const g = await runConfig({ command: ["/bin/id", "-G"], linux: { security_context: { run_as_user: { value: 4321 }, run_as_group: { value: 765 } } } });
    expect(g.stdout.trim()).toBe("765");
  });

  test("the default capability set, and add/drop", async () => {
    const plain = await runConfig({ command: ["/bin/grep", "^Cap", "/proc/self/status"] });
    expect(plain.code).toBe(0);
    const caps = capEff(plain.stdout);
    expect(caps).toContain("CAP_CHOWN");
    expect(caps).toContain("CAP_NET_BIND_SERVICE");
    expect(caps).not.toContain("CAP_NET_ADMIN");
    expect(caps).not.toContain("CAP_SYS_ADMIN");

    const changed = await runConfig({
      command: ["/bin/grep", "^Cap", "/proc/self/status"],
      linux: { security_context: { capabilities: { add_capabilities: ["NET_ADMIN"], drop_capabilities: ["CAP_CHOWN"] } } },
    });
    expect(changed.code).toBe(0);
    expect(capEff(changed.stdout)).toContain("CAP_NET_ADMIN");
    expect(capEff(changed.stdout)).not.toContain("CAP_CHOWN");
  });

  test("a privileged container gets every capability the runtime holds", async () => {
    const r = await runConfig(
      { command: ["/bin/grep", "^Cap", "/proc/self/status"], linux: { security_context: { privileged: true } } },
      { linux: { security_context: { privileged: true } } },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(new Set(capEff(r.stdout))).toEqual(new Set(await readPermittedCapabilities()));
  });

  test("RuntimeDefault seccomp refuses unshare(CLONE_NEWUSER); Unconfined allows it", async () => {
    // Creating a user namespace needs no capability, so only seccomp can refuse it.
    const confined = await runConfig({ command: ["/bin/unshare", "-U", "/bin/true"], linux: { security_context: { seccomp: { profile_type: 0 } } } });
    expect(confined.code).not.toBe(0);
    expect(confined.stderr).toContain("Operation not permitted");
    const free = await runConfig({ command: ["/bin/unshare", "-U", "/bin/true"], linux: { security_context: { seccomp: { profile_type: 1 } } } });
    expect(free.stderr).toBe("");
    expect(free.code).toBe(0);
  });

  test("RuntimeDefault still runs ordinary programs", async () => {
    const r = await runConfig({ command: ["/bin/sh", "-c", "echo $FOO; pwd"], working_dir: "/tmp", envs: [{ key: "FOO", value: "bar" }], linux: { security_context: { seccomp: { profile_type: 0 } } } });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("bar\n/tmp\n");
  });

  test("a read-only rootfs refuses writes", async () => {
    const r = await runConfig({ command: ["/bin/touch", "/written"], linux: { security_context: { readonly_rootfs: true } } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Read-only file system");
    expect(existsSync(join(rootfs, "written"))).toBe(false);
    const rw = await runConfig({ command: ["/bin/touch", "/tmp/written"] });
    expect(rw.code).toBe(0);
    rmSync(join(rootfs, "tmp/written"), { force: true });
  });

  test("masked paths read empty: /proc/kcore (or another masked file) and /sys/firmware", async () => {
    // Some kernels lack /proc/kcore (CONFIG_PROC_KCORE off, as on this test bed's); runc
    // skips masks of missing paths, so take the first masked file the host really has.
    const file = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts"].find((p) => existsSync(p));
    if (file === undefined) throw new Error("no masked /proc file exists on this host");
    expect(readFileSync(file).length).toBeGreaterThan(0); // the host's is not empty...
    const r = await runConfig({ command: ["/bin/sh", "-c", `head -c 16 ${file}; ls -A /sys/firmware`] });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(""); // ...the container's is
  });

  test("a negative oom_score_adj is clamped to the runtime's own instead of failing", async () => {
    const r = await runConfig({ command: ["/bin/cat", "/proc/self/oom_score_adj"], linux: { resources: { oom_score_adj: -997 } } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(readFileSync("/proc/self/oom_score_adj", "utf8").trim());
  });

  test("pod sysctls, hostname and files", async () => {
    const r = await runConfig(
      { command: ["/bin/sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; hostname; cat /etc/hosts /etc/resolv.conf"] },
      { linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "0" } } },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0\npod-host\n127.0.0.1 localhost\n10.9.8.7 pod-host\nnameserver 10.0.0.10\n");
  });
});
