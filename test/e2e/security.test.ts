// What crib exposes, on the compiled daemon:
//   - the CRI socket is 0660 root:root: another user cannot connect (a world-
//     writable socket, as a control, can be reached by that user);
//   - streaming URLs carry at least 128 random bits, each URL its own (that a
//     token works once and then never again is tested in streaming.test.ts:
//     "a used token is refused before the upgrade (404); so are unknown ones");
//   - registry credentials (basic, token, CRI auth, config file) never reach the
//     daemon's or the monitor's log at debug level, nor Status(verbose);
//   - crib binds no abstract unix socket (CVE-2020-15257: those reach host-
//     network containers), and a container does not see the daemon's socket
//     unless it is mounted into it on purpose.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { stringify } from "yaml";
import { ContainerState, NamespaceMode } from "../../src/protocol/types.ts";
import { containerConfig, logLines, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, CRIB_BIN, startCrib, tempConfig, shutdownCrib, untilServing } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { monitorPid } from "../helpers/leaks.ts";
import { startRegistry, type BasicRegistry, type StartedRegistry, type TokenRegistry } from "../helpers/registry.ts";

let reg: StartedRegistry;
let basicReg: BasicRegistry;
let tokenReg: TokenRegistry;
let image: PushedImage;
let crib: CribInstance;
const NOBODY = 65534;

beforeAll(async () => {
  [reg, basicReg, tokenReg] = await Promise.all([startRegistry(), startRegistry({ auth: "basic" }), startRegistry({ auth: "token" })]);
  image = await pushImage(reg, "sec/busybox:1", { layers: [busyboxLayer()] });
  // The socket in a directory of its own that everyone may enter: only the socket's mode guards it.
  const t = tempConfig();
  const socket = join(t.dir, "sock", "crib.sock");
  const registries = { configs: { [basicReg.host]: { auth: { username: basicReg.username, password: basicReg.password } } } };
  writeFileSync(t.configPath, stringify({ socket, root: t.root, state: t.state, log: { level: "debug" }, registries }));
  crib = await startCrib({}, { ...t, socket });
  await untilServing(crib);
  chmodSync(t.dir, 0o755);
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
});

afterAll(async () => {
  await shutdownCrib(crib);
  await Promise.all([reg?.stop(), basicReg?.stop(), tokenReg?.stop()]);
});

/** `crib ctl version` against the socket as user nobody (group nogroup, 65534, only). */
function ctlAsNobody(socket = crib.socket): { code: number; out: string } {
  const r = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", CRIB_BIN, "ctl", "-r", `unix://${socket}`, "--timeout", "3", "version"], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

describe("the CRI socket", () => {
  test("0660 root:root: another user cannot connect; with the mode opened (a control) it can", () => {
    const st = lstatSync(crib.socket);
    expect([st.isSocket(), st.mode & 0o777, st.uid, st.gid]).toEqual([true, 0o660, 0, 0]);
    const denied = ctlAsNobody();
    expect(denied.code).not.toBe(0);
    expect(denied.out).toMatch(/EACCES|permission denied/i);
    chmodSync(crib.socket, 0o666);
    try {
      const allowed = ctlAsNobody();
      expect(allowed.out).toContain("RuntimeName:  crib");
    } finally {
      chmodSync(crib.socket, 0o660);
    }
  });

  test("socketGroup gives the socket's group, and only that group, access", async () => {
    const t = tempConfig({ socketGroup: "nogroup" });
    const other = await startCrib({}, t);
    try {
      await untilServing(other); // the group and mode are set between bind and the announcement
      chmodSync(t.dir, 0o755);
      chmodSync(dirname(t.socket), 0o755);
      const st = lstatSync(t.socket);
      expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o660, 0, NOBODY]);
      expect(ctlAsNobody(t.socket).out).toContain("RuntimeName:  crib");
    } finally {
      await shutdownCrib(other);
      other.cleanup();
    }
  });

  test("an unknown socketGroup stops the daemon at start-up, naming it", async () => {
    const t = tempConfig({ socketGroup: "no-such-group" });
    const r = Bun.spawnSync([CRIB_BIN, "serve", "--config", t.configPath], { stdout: "pipe", stderr: "pipe" });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr.toString()).toContain('socketGroup "no-such-group": no such group in /etc/group');
  });
});

describe("streaming URLs", () => {
  test("each carries its own token of at least 128 random bits", async () => {
    const { id } = await runContainer(crib.client, podConfig("tokens"), containerConfig("t", image.ref, ["sleep", "100000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const tokens = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { url } = await crib.client.call("RuntimeService", "Exec", { container_id: id, cmd: ["true"], tty: false, stdin: false, stdout: true, stderr: true });
      const token = new URL(url).pathname.split("/").filter(Boolean).at(-1)!;
      expect(Buffer.from(token, "base64url").length).toBeGreaterThanOrEqual(16);
      tokens.add(token);
    }
    expect(tokens.size).toBe(50);
  });
});

describe("registry credentials", () => {
  test("never in the daemon's or the monitor's log at debug level, nor in Status(verbose)", async () => {
    // Configs of their own: the same content as `image` would be the same image, in use by a container.
    const basicImg = await pushImage(basicReg, "sec/basic:1", { layers: [busyboxLayer()], config: { Env: ["FROM=basic"] } });
    const tokenImg = await pushImage(tokenReg, "sec/token:1", { layers: [busyboxLayer()], config: { Env: ["FROM=token"] } });
    const pull = (ref: string, auth: object | null) => crib.client.call("ImageService", "PullImage", { image: { image: ref }, auth }, { timeoutMs: 60_000 });
    // Config-file credentials, CRI username/password, CRI base64 `auth`.
    await pull(basicImg.ref, null);
    await crib.client.call("ImageService", "RemoveImage", { image: { image: basicImg.ref } });
    await pull(basicImg.ref, { username: basicReg.username, password: basicReg.password });
    await pull(tokenImg.ref, { username: tokenReg.username, password: tokenReg.password });
    await crib.client.call("ImageService", "RemoveImage", { image: { image: tokenImg.ref } });
    await pull(tokenImg.ref, { auth: Buffer.from(`${tokenReg.username}:${tokenReg.password}`).toString("base64") });
    // A wrong password is refused; its error names the registry, not the password.
    const wrong = await pull(tokenImg.ref.replace(":1", ":nope"), { username: tokenReg.username, password: "wrong-password-xyz" }).catch((e: Error) => e.message);
    expect(String(wrong)).not.toContain("wrong-password-xyz");
    const status = await crib.client.call("RuntimeService", "Status", { verbose: true });

    const monitorLog = readFileSync(join(crib.state, "monitor", "monitor.log"), "utf8");
    const texts = { "daemon log": crib.logs(), "monitor log": monitorLog, "Status(verbose)": JSON.stringify(status.info) };
    expect(crib.logs()).toContain('"level":"debug"'); // debug really was on
    for (const [where, text] of Object.entries(texts)) {
      for (const [user, password] of [[basicReg.username, basicReg.password], [tokenReg.username, tokenReg.password]] as const) {
        expect(text.includes(password), `${where} holds a password`).toBe(false);
        expect(text.includes(Buffer.from(`${user}:${password}`).toString("base64")), `${where} holds a basic credential`).toBe(false);
      }
      expect(text.includes("wrong-password-xyz"), `${where} holds a wrong password`).toBe(false);
      // Bearer tokens are JWTs here: base64url of '{"' starts every one of them.
      expect(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(text), `${where} holds a bearer token`).toBe(false);
      expect(/authorization"?\s*[:=]\s*"?(basic|bearer) /i.test(text), `${where} holds an Authorization header`).toBe(false);
    }
  });
});

describe("sockets a container could reach", () => {
  /** Unix sockets held open by a process: inode -> bound path ("@..." for abstract names). */
  function unixSocketsOf(pid: number): string[] {
    const table = new Map<string, string>();
    for (const line of readFileSync("/proc/net/unix", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 7) table.set(f[6]!, f[7] ?? "");
    }
    const out: string[] = [];
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && table.has(m[1]!)) out.push(table.get(m[1]!)!);
    }
    return out;
  }

  test("crib binds no abstract unix socket; what it binds are its socket files", async () => {
    const bound = [...unixSocketsOf(crib.proc.pid), ...unixSocketsOf(monitorPid(crib.state))].filter((p) => p !== "");
    expect(bound.filter((p) => p.startsWith("@"))).toEqual([]);
    expect([...new Set(bound)].sort()).toEqual([crib.socket, join(crib.state, "monitor", "monitor.sock")].sort());
  });

  test("a container, host network or not, does not see the daemon's socket unless it is mounted on purpose", async () => {
    const look = ["sh", "-c", `test -S ${crib.socket} && echo visible || echo hidden; test -e ${crib.state} && echo state-visible || echo state-hidden`];
    const seen = async (pod: ReturnType<typeof podConfig>, extra: Parameters<typeof containerConfig>[3] = {}) => {
      const { id } = await runContainer(crib.client, pod, containerConfig("look", image.ref, look, extra));
      const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
      return (await logLines(st.log_path)).map((l) => l[2]);
    };
    expect(await seen(podConfig("plain"))).toEqual(["hidden", "state-hidden"]);
    const hostNet = podConfig("hostnet", { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } } } });
    expect(await seen(hostNet)).toEqual(["hidden", "state-hidden"]);
    const dir = dirname(crib.socket);
    const mounted = await seen(podConfig("mounted"), { mounts: [{ container_path: dir, host_path: dir, readonly: true }] });
    expect(mounted[0]).toBe("visible");
  });
});
