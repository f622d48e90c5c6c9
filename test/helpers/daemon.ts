// Start the compiled dist/crib as a daemon in temp dirs and talk to it over
// its socket, as a kubelet would.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { CriClient } from "../../src/ctl/client.ts";
import { socketIsLive } from "../../src/daemon/socket.ts";
import { tempDir } from "./tmp.ts";

export const CRIB_BIN = join(import.meta.dir, "../../dist/crib");

export function requireBinary(): string {
  if (!existsSync(CRIB_BIN)) throw new Error(`${CRIB_BIN} is missing: run "npm run build" first (npm test does)`);
  return CRIB_BIN;
}

export interface CribInstance {
  dir: string;
  socket: string;
  root: string;
  state: string;
  configPath: string;
  proc: ReturnType<typeof Bun.spawn>;
  client: CriClient;
  /** stderr lines so far (the daemon's JSON logs). */
  logs(): string;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(): Promise<number>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Remove the temp dirs (after stop/kill). */
  cleanup(): void;
}

/** Write a config file in a new temp dir, with socket/root/state inside it. */
export function tempConfig(extra: Record<string, unknown> = {}): { dir: string; configPath: string; socket: string; root: string; state: string } {
  const dir = tempDir("crib-test-");
  const socket = join(dir, "run", "crib.sock");
  const root = join(dir, "lib");
  const state = join(dir, "run");
  const configPath = join(dir, "crib.yaml");
  writeFileSync(configPath, stringify({ socket, root, state, log: { level: "debug" }, ...extra }));
  return { dir, configPath, socket, root, state };
}

export async function waitForSocket(proc: ReturnType<typeof Bun.spawn>, socket: string, logs: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`crib exited with ${proc.exitCode} before listening:\n${logs()}`);
    // Connectable, whatever the log level: the socket is bound before it is announced.
    if (existsSync(socket) && (await socketIsLive(socket))) return;
    await Bun.sleep(20);
  }
  throw new Error(`crib did not listen on ${socket} within ${timeoutMs} ms:\n${logs()}`);
}

export async function startCrib(
  extra: Record<string, unknown> = {},
  reuse?: { dir: string; configPath: string; socket: string; root: string; state: string },
  binary?: string,
  env?: Record<string, string>,
): Promise<CribInstance> {
  const bin = binary ?? requireBinary();
  const t = reuse ?? tempConfig(extra);
  const proc = Bun.spawn([bin, "serve", "--config", t.configPath], { stdout: "ignore", stderr: "pipe", env: env ? { ...process.env, ...env } : undefined });
  let stderr = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) stderr += dec.decode(chunk, { stream: true });
  })();
  const logs = () => stderr;
  await waitForSocket(proc, t.socket, logs);
  let stopping = false;
  // A daemon that dies under a test takes the file's later tests with it: say why,
  // in the test output (CI keeps nothing else).
  void proc.exited.then((code) => {
    if (stopping || code === 0) return;
    const tail = stderr.trimEnd().split("\n").slice(-30).join("\n");
    process.stderr.write(`\ncrib daemon (${t.configPath}) exited unexpectedly with ${code}; its last log lines:\n${tail}\n`);
  });
  const client = new CriClient(`unix://${t.socket}`);
  return {
    ...t,
    proc,
    client,
    logs,
    async stop() {
      stopping = true;
      client.close();
      proc.kill("SIGTERM");
      return await proc.exited;
    },
    async kill() {
      stopping = true;
      client.close();
      proc.kill("SIGKILL");
      await proc.exited;
    },
    cleanup() {
      stopMonitorOf(t.state); // it outlives the daemon by design; these temp dirs were its whole world
      rmSync(t.dir, { recursive: true, force: true });
    },
  };
}

/**
 * Wait for the daemon's "crib is serving" line: the socket accepts connections a moment
 * before its group and mode are set (bind, then chown/chmod, as containerd and CRI-O).
 */
export async function untilServing(c: CribInstance): Promise<void> {
  for (let i = 0; i < 250 && !c.logs().includes('"crib is serving"'); i++) await Bun.sleep(20);
  if (!c.logs().includes('"crib is serving"')) throw new Error(`crib never said it is serving:\n${c.logs()}`);
}

/** Run dist/crib with args; collect output. */
export async function runCrib(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([requireBinary(), ...args], { stdout: "pipe", stderr: "pipe", env: opts.env ? { ...process.env, ...opts.env } : undefined });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** SIGTERM the monitor serving `state`, if its pid file names a live monitor of that state. */
function stopMonitorOf(state: string): void {
  const pidFile = join(state, "monitor", "monitor.pid");
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
  if (!(pid > 0)) return;
  try {
    // The pid may have been reused since: only a monitor of this state dir is ours.
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(join(state, "monitor"))) return;
    process.kill(pid, "SIGTERM");
  } catch {
    // already gone
  }
}

/**
 * The end of a test file's daemon: remove every pod (and so every container),
 * stop the daemon and then its monitor, and delete the temp dirs.
 */
export async function shutdownCrib(c: CribInstance | undefined): Promise<void> {
  if (!c) return;
  if (c.proc.exitCode === null) {
    const pods = await c.client.call("RuntimeService", "ListPodSandbox", { filter: null }).catch(() => ({ items: [] }));
    for (const p of pods.items) await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
  }
  if (c.proc.exitCode === null) await c.stop();
  else c.client.close();
  c.cleanup();
}
