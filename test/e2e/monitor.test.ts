// The monitor against real runc (root): busybox containers from a bundle built here,
// the monitor run from source (`bun src/faces/dispatch.ts monitor`), driven through MonitorClient
// exactly as the daemon does.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureMonitor, type ContainerState, type ExitInfo, type MonitorClient, type RuntimeRef } from "../../src/monitor/client.ts";
import { joinCriLines, parseCriLog, MAX_LINE_BYTES } from "../../src/monitor/cri_log.ts";

const RUNC = "/usr/sbin/runc";
const canRun = process.getuid?.() === 0 && existsSync(RUNC) && existsSync("/usr/bin/busybox");
const COMMAND = [process.execPath, resolve(import.meta.dir, "../../src/faces/dispatch.ts"), "monitor"];
const APPLETS = ["sh", "echo", "sleep", "cat", "yes", "head", "true", "false", "id", "printf"];

let dir = "";
let stateDir = "";
let rootfs = "";
let runtime: RuntimeRef;
let cgroupParent = "";
let client: MonitorClient;
const created = new Set<string>();
let seq = 0;

/** A shared read-only busybox rootfs. */
function makeRootfs(at: string): void {
  for (const d of ["bin", "proc", "dev", "tmp", "etc"]) mkdirSync(join(at, d), { recursive: true });
  copyFileSync("/usr/bin/busybox", join(at, "bin/busybox"));
  for (const a of APPLETS) linkSync(join(at, "bin/busybox"), join(at, "bin", a));
  writeFileSync(join(at, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n");
  writeFileSync(join(at, "etc/group"), "root:x:0:\nnobody:x:65534:\n");
}

const CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"];

/** A bundle whose config.json runs `script` with sh. */
function makeBundle(name: string, script: string, opts: { memoryLimit?: number; args?: string[] } = {}): string {
  const bundle = join(dir, "bundles", name);
  mkdirSync(bundle, { recursive: true });
  const config = {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: opts.args ?? ["sh", "-c", script],
      env: ["PATH=/bin", "HOME=/"],
      cwd: "/",
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: name,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
    ],
    linux: {
      cgroupsPath: `${cgroupParent}/${name}`,
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network" }],
      resources: {
        devices: [{ allow: false, access: "rwm" }],
        ...(opts.memoryLimit === undefined ? {} : { memory: { limit: opts.memoryLimit, swap: opts.memoryLimit } }),
      },
      maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
      readonlyPaths: ["/proc/sys", "/proc/sysrq-trigger"],
    },
  };
  writeFileSync(join(bundle, "config.json"), JSON.stringify(config, null, 2));
  return bundle;
}

function logPathOf(name: string): string {
  return join(dir, "logs", name, "0.log");
}

/** Create (and by default start) a container running `script`. */
async function run(
  script: string,
  opts: { start?: boolean; logPath?: string; stdin?: boolean; memoryLimit?: number; args?: string[] } = {},
): Promise<{ id: string; log: string; state: ContainerState }> {
  const id = nextId();
  const bundle = makeBundle(id, script, opts);
  const log = opts.logPath ?? logPathOf(id);
  let state = await client.create({ id, bundle, runtime, logPath: log, stdin: opts.stdin ?? false, stdinOnce: false, tty: false });
  expect(state.status).toBe("created");
  if (opts.start !== false) state = await client.start(id);
  return { id, log, state };
}

function nextId(): string {
  const id = `crib-mon-${process.pid}-${++seq}`;
  created.add(id);
  return id;
}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

async function waitExit(id: string, c = client): Promise<ExitInfo> {
  return waitFor(`container ${id} to exit`, async () => {
    const st = await c.state(id);
    return st.status === "exited" ? st.exit : undefined;
  });
}

function readLog(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function monitorPid(): number {
  return Number(readFileSync(join(stateDir, "monitor.pid"), "utf8").trim());
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Numbers of "line N" records in a log, in order. */
function numberedLines(text: string): number[] {
  return joinCriLines(parseCriLog(text), "stdout")
    .lines.map((l) => /^line (\d+)$/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

function expectConsecutive(nums: number[]): void {
  expect(nums.length).toBeGreaterThan(0);
  expect(nums).toEqual(nums.map((_, i) => i));
}

const COUNTER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done";

describe.skipIf(!canRun)("crib monitor with runc", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "crib-mon-"));
    stateDir = join(dir, "state");
    rootfs = join(dir, "rootfs");
    makeRootfs(rootfs);
    runtime = { path: RUNC, root: join(dir, "runc-root") };
    cgroupParent = `/crib-monitor-test-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
    client = await ensureMonitor({ state: stateDir, command: COMMAND, logLevel: "debug" });
  });

  afterAll(async () => {
    try {
      client?.close();
    } catch {
      // closed
    }
    if (stateDir !== "" && existsSync(join(stateDir, "monitor.pid"))) {
      const pid = monitorPid();
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    for (const id of created) {
      Bun.spawnSync([RUNC, "--root", runtime.root, "delete", "--force", id], { stdout: "ignore", stderr: "ignore" });
    }
    if (cgroupParent !== "") {
      for (const ctrl of readdirSync("/sys/fs/cgroup")) {
        const p = join("/sys/fs/cgroup", ctrl, cgroupParent);
        if (!existsSync(p)) continue;
        for (const sub of readdirSync(p, { withFileTypes: true })) if (sub.isDirectory()) rmdirSync(join(p, sub.name));
        rmdirSync(p);
      }
    }
    if (process.env.KEEP) console.log(readFileSync(join(stateDir, "monitor.log"), "utf8").slice(-5000));
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  test("ensureMonitor connects to the running monitor instead of starting another", async () => {
    const first = await client.info();
    const again = await ensureMonitor({ state: stateDir, command: COMMAND });
    expect((await again.info()).pid).toBe(first.pid);
    again.close();
    expect(first.pid).toBe(monitorPid());
  });

  test("create + start; stdout and stderr lines in the CRI log with F and P", async () => {
    const script = [
      "echo out one",
      "echo err one >&2",
      "s=abcdefgh; for i in 1 2 3 4 5 6 7 8 9 10; do s=$s$s; done", // 8 KiB
      'echo "$s$s$s$s$s"', // 40 KiB, one line
      "echo out two",
      "printf 'last words without newline'",
    ].join("; ");
    const { id, log, state } = await run(script);
    // A script this short may have ended by the time start answers (more so since the
    // monitor logs output the moment it arrives): started it was, either way.
    expect(["running", "exited"]).toContain(state.status);
    expect(state.pid).toBeGreaterThan(0);
    expect(BigInt(state.startedAtNs!)).toBeGreaterThanOrEqual(BigInt(state.createdAtNs));
    const exit = await waitExit(id);
    expect(exit).toMatchObject({ exitCode: 0, reason: "Completed" });
    const text = readLog(log);
    const recs = parseCriLog(text);
    for (const r of recs) expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)$/);
    const out = joinCriLines(recs, "stdout");
    const big = "abcdefgh".repeat(1024 * 5);
    expect(out.lines).toEqual(["out one", big, "out two"]);
    expect(out.unterminated).toBe("last words without newline");
    expect(joinCriLines(recs, "stderr").lines).toEqual(["err one"]);
    // The 40 KiB line: P, P, F of at most 16 KiB each.
    const pieces = recs.filter((r) => r.stream === "stdout" && r.content.startsWith("abcdefgh"));
    expect(pieces.map((r) => [r.partial, r.content.length])).toEqual([
      [true, MAX_LINE_BYTES],
      [true, MAX_LINE_BYTES],
      [false, big.length - 2 * MAX_LINE_BYTES],
    ]);
    expect(recs.filter((r) => r.stream === "stdout").at(-1)).toMatchObject({ partial: true, content: "last words without newline" });
    expect((await client.list()).some((s) => s.id === id)).toBe(true);
    await client.delete(id);
    await client.delete(id); // idempotent
    await expect(client.state(id)).rejects.toMatchObject({ kind: "not_found" });
  });

  test("create is idempotent and start of a created container runs it", async () => {
    const { id, state } = await run("echo hi", { start: false });
    const bundle = join(dir, "bundles", id);
    const again = await client.create({ id, bundle, runtime, logPath: logPathOf(id), stdin: false, stdinOnce: false, tty: false });
    expect(again.pid).toBe(state.pid);
    expect((await client.state(id)).status).toBe("created");
    await client.start(id);
    expect(await waitExit(id)).toMatchObject({ exitCode: 0 });
    await client.delete(id);
  });

  test("exit codes: 3 is an Error, SIGKILL is 137, and subscribers hear of exits", async () => {
    const events: Array<[string, ExitInfo]> = [];
    client.onExit((id, exit) => events.push([id, exit]));
    const three = await run("exit 3");
    expect(await waitExit(three.id)).toMatchObject({ exitCode: 3, reason: "Error" });
    const sleeper = await run("sleep 1000");
    await client.kill(sleeper.id, "SIGKILL");
    const killed = await waitExit(sleeper.id);
    expect(killed).toMatchObject({ exitCode: 137, signal: "SIGKILL", reason: "Error" });
    await client.kill(sleeper.id, "SIGTERM"); // an exited container: nothing to do
    await waitFor("exit events", () => events.filter(([id]) => id === three.id || id === sleeper.id).length === 2 || undefined);
    expect(events.find(([id]) => id === three.id)?.[1].exitCode).toBe(3);
    await client.delete(three.id);
    await client.delete(sleeper.id);
  });

  test("ExecSync: separate streams, exit code, timeout, output cap", async () => {
    const { id } = await run("sleep 1000");
    const base = { id, timeoutMs: 30_000, maxOutputBytes: 16 << 20 };
    const r = await client.exec({ ...base, args: ["sh", "-c", "echo to out; echo to err >&2; exit 5"] });
    expect(new TextDecoder().decode(r.stdout)).toBe("to out\n");
    expect(new TextDecoder().decode(r.stderr)).toBe("to err\n");
    expect(r).toMatchObject({ exitCode: 5, timedOut: false, truncated: false });

    const who = await client.exec({ ...base, args: ["id", "-u"], user: { uid: 65534, gid: 65534 }, env: ["X=1"], cwd: "/tmp" });
    expect(new TextDecoder().decode(who.stdout).trim()).toBe("65534");

    const slow = await client.exec({ ...base, args: ["sleep", "999"], timeoutMs: 300 });
    expect(slow.timedOut).toBe(true);
    // The exec'd sleep is gone, not just runc exec: no process in the container runs "sleep 999".
    const ps = await client.exec({ ...base, args: ["sh", "-c", "cat /proc/[0-9]*/cmdline"] });
    const cmdlines = new TextDecoder().decode(ps.stdout);
    expect(cmdlines).toContain("sleep\u00001000");
    expect(cmdlines).not.toContain("999");

    const cap = 4096;
    const big = await client.exec({ ...base, args: ["sh", "-c", "yes | head -c 100000"], maxOutputBytes: cap });
    expect(big.truncated).toBe(true);
    expect(big.exitCode).toBe(0);
    expect(big.stdout.length).toBe(cap);
    expect(new TextDecoder().decode(big.stdout)).toMatch(/^(y\n)+[\s\S]*\[crib: output truncated: more than 4096 bytes\]\n$/);
    expect(big.stderr.length).toBe(0);
    await client.kill(id, "SIGKILL");
    await waitExit(id);
    await client.delete(id);
  });

  test("reopenLog after the kubelet renamed the log file", async () => {
    const { id, log } = await run(COUNTER);
    await waitFor("first lines", () => numberedLines(readLog(log)).length >= 3 || undefined);
    renameSync(log, `${log}.1`);
    await client.reopenLog(id);
    await waitFor("lines in the new file", () => numberedLines(readLog(log)).length >= 3 || undefined);
    await client.kill(id, "SIGKILL");
    await waitExit(id);
    const before = numberedLines(readLog(`${log}.1`));
    const after = numberedLines(readLog(log));
    expectConsecutive([...before, ...after]);
    await client.delete(id);
    await expect(client.reopenLog(id)).rejects.toMatchObject({ kind: "not_found" });
  });

  test("a flooding container does not hold back another container's log", async () => {
    // The flood's log goes to /dev/null: the monitor still reads and encodes all of it.
    const flood = await run("yes", { logPath: "/dev/null" });
    const ticker = await run("i=0; while [ $i -lt 20 ]; do echo line $i; i=$((i+1)); sleep 0.05; done");
    const exit = await waitExit(ticker.id);
    expect(exit.exitCode).toBe(0);
    expectConsecutive(numberedLines(readLog(ticker.log)));
    expect(numberedLines(readLog(ticker.log)).length).toBe(20);
    expect((await client.state(flood.id)).status).toBe("running");
    await client.kill(flood.id, "SIGKILL");
    await waitExit(flood.id);
    await client.delete(flood.id);
    await client.delete(ticker.id);
  });

  test("a create that runc refuses fails with runc's message and leaves nothing behind", async () => {
    const id = nextId();
    const bundle = makeBundle(id, "", { args: ["/bin/no-such-binary"] });
    const err = await client.create({ id, bundle, runtime, logPath: logPathOf(id), stdin: false, stdinOnce: false, tty: false }).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: expect.stringContaining("no-such-binary") });
    await expect(client.state(id)).rejects.toMatchObject({ kind: "not_found" });
    expect(existsSync(join(stateDir, "monitor", id))).toBe(false);
    const tty = await client.create({ id, bundle, runtime, logPath: logPathOf(id), stdin: false, stdinOnce: false, tty: true }).catch((e: unknown) => e);
    expect(tty).toMatchObject({ kind: "invalid_argument", message: expect.stringContaining("process.terminal") });
    const bad = await client.create({ id: "../evil", bundle, runtime, logPath: logPathOf(id), stdin: false, stdinOnce: false, tty: false }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ kind: "invalid_argument" });
  });

  test("reopenLog reports a log path it cannot open", async () => {
    const { id, log } = await run("sleep 1000");
    const logDir = join(log, "..");
    rmSync(logDir, { recursive: true, force: true });
    writeFileSync(logDir, "a file where the log dir was");
    await expect(client.reopenLog(id)).rejects.toMatchObject({ kind: "internal", message: expect.stringContaining(log) });
    rmSync(logDir);
    await client.kill(id, "SIGKILL");
    await waitExit(id);
    await client.delete(id);
  });

  test("stdin: the container reads what is written to its FIFO; closeStdin gives it EOF", async () => {
    const { id, log } = await run("cat; echo stdin closed", { stdin: true });
    const fifo = join(stateDir, "monitor", id, "stdin");
    const w = openSync(fifo, "w");
    writeSync(w, "hello through stdin\n");
    await waitFor("the echoed line", () => readLog(log).includes("hello through stdin") || undefined);
    closeSync(w);
    // The monitor still holds a write end: no EOF yet.
    expect((await client.state(id)).status).toBe("running");
    await client.closeStdin(id);
    expect(await waitExit(id)).toMatchObject({ exitCode: 0 });
    expect(joinCriLines(parseCriLog(readLog(log)), "stdout").lines).toEqual(["hello through stdin", "stdin closed"]);
    await client.delete(id);
  });

  test("an init killed by the OOM killer is OOMKilled", async () => {
    const { id } = await run("s=0123456789abcdef; while true; do s=$s$s; done", { memoryLimit: 32 << 20 });
    expect(await waitExit(id)).toMatchObject({ exitCode: 137, signal: "SIGKILL", reason: "OOMKilled" });
    await client.delete(id);
  });

  test("a SIGKILLed monitor: containers keep running, a new monitor reads on without a gap", async () => {
    const counter = await run(COUNTER);
    const doomed = await run("sleep 1; exit 7");
    const reader = await run("cat; echo saw EOF", { stdin: true });
    // The daemon's part: hold the FIFOs so writers never see EPIPE (nor readers EOF) while no monitor runs.
    client.holdPipes(counter.id);
    client.holdPipes(doomed.id);
    client.holdPipes(reader.id);
    await waitFor("first lines", () => numberedLines(readLog(counter.log)).length >= 3 || undefined);
    const oldPid = monitorPid();
    client.close();
    process.kill(oldPid, "SIGKILL");
    await waitFor("the monitor to die", () => !alive(oldPid) || undefined);
    const linesAtKill = numberedLines(readLog(counter.log)).length;
    // The doomed container exits while nothing watches; the counter keeps writing into the pipe.
    await waitFor("the doomed container to exit", () => !alive(doomed.state.pid) || undefined);
    await Bun.sleep(500);
    expect(alive(counter.state.pid)).toBe(true);

    client = await ensureMonitor({ state: stateDir, command: COMMAND, logLevel: "debug" });
    const info = await client.info();
    expect(info.pid).not.toBe(oldPid);
    expect(await waitExit(doomed.id)).toMatchObject({ exitCode: 255, reason: "Unknown", message: "exited while no monitor was watching" });
    expect((await client.state(counter.id)).status).toBe("running");
    await waitFor("lines written after the takeover", () => numberedLines(readLog(counter.log)).length >= linesAtKill + 15 || undefined);
    // stdin stayed open across the restart.
    const w = openSync(join(stateDir, "monitor", reader.id, "stdin"), "w");
    writeSync(w, "after the restart\n");
    closeSync(w);
    await waitFor("the stdin line", () => readLog(reader.log).includes("after the restart") || undefined);
    expect((await client.state(reader.id)).status).toBe("running");
    await client.closeStdin(reader.id);
    await waitExit(reader.id);
    expect(joinCriLines(parseCriLog(readLog(reader.log)), "stdout").lines).toEqual(["after the restart", "saw EOF"]);

    await client.kill(counter.id, "SIGKILL");
    const exit = await waitExit(counter.id);
    // No longer our child after the restart: its status is not ours to read.
    expect(exit.reason).toBe("Unknown");
    expectConsecutive(numberedLines(readLog(counter.log)));
    client.releasePipes(counter.id);
    client.releasePipes(doomed.id);
    client.releasePipes(reader.id);
    await client.delete(counter.id);
    await client.delete(doomed.id);
    await client.delete(reader.id);
  });

  test("upgrade by re-exec: same pid, containers stay its children, logs go on", async () => {
    const counter = await run(COUNTER);
    client.holdPipes(counter.id);
    await waitFor("first lines", () => numberedLines(readLog(counter.log)).length >= 3 || undefined);
    const before = await client.info();
    const reconnect = (what: string, generation: number) =>
      waitFor(what, async () => {
        try {
          const c = await ensureMonitor({ state: stateDir, command: COMMAND, timeoutMs: 2_000 });
          if ((await c.info()).generation === generation) return c;
          c.close();
        } catch {
          // not serving yet
        }
        return undefined;
      });
    // An upgrade to a binary that does not run is refused; the monitor goes on as it was.
    await expect(client.upgrade(["/nonexistent/crib", "monitor"])).rejects.toMatchObject({ kind: "failed_precondition" });
    await expect(client.upgrade([process.execPath, "-e", "process.exit(3)"])).rejects.toMatchObject({ kind: "failed_precondition", message: expect.stringContaining("exited with 3") });
    expect(await client.info()).toMatchObject({ pid: before.pid, generation: before.generation });
    const n0 = numberedLines(readLog(counter.log)).length;
    await waitFor("lines after the failed upgrade", () => numberedLines(readLog(counter.log)).length >= n0 + 3 || undefined);

    const closed = new Promise<void>((r) => client.onClose(r));
    await client.upgrade(COMMAND);
    await closed;
    client = await reconnect("the upgraded monitor", before.generation + 1);
    expect((await client.info()).pid).toBe(before.pid);
    const n = numberedLines(readLog(counter.log)).length;
    await waitFor("lines after the upgrade", () => numberedLines(readLog(counter.log)).length >= n + 5 || undefined);
    await client.kill(counter.id, "SIGKILL");
    // Still our child: the exact status.
    expect(await waitExit(counter.id)).toMatchObject({ exitCode: 137, signal: "SIGKILL" });
    expectConsecutive(numberedLines(readLog(counter.log)));
    client.releasePipes(counter.id);
    await client.delete(counter.id);
  });
});
