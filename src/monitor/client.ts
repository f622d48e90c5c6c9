// The daemon's side of the monitor: a client over DIR/monitor.sock, and ensureMonitor()
// that connects to the running monitor or starts one detached (it outlives the daemon).

import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import net from "node:net";
import { dirname } from "node:path";
import { CribError, errorMessage, internal, invalidArgument, notFound, unavailable, type ErrorKind } from "../errors.ts";
import {
  containerDir,
  isValidContainerId,
  socketPath,
  type AttachInfo,
  type ContainerState,
  type CreateRequest,
  type ExecRequest,
  type ExecResult,
  type ExitEvent,
  type ExitInfo,
  type MonitorInfo,
  type OutputEndEvent,
  type OutputEvent,
  type Response,
  type WireExecResult,
} from "./protocol.ts";
import { FrameReader } from "./framing.ts";
import { readState } from "./state_store.ts";

export type { AttachInfo, ContainerState, CreateRequest, ExecRequest, ExecResult, ExitInfo, MonitorInfo, RuntimeRef } from "./protocol.ts";

/** Receives a copy of an attached container's output. */
export interface OutputHandler {
  output(stream: "stdout" | "stderr", chunk: Uint8Array): void;
  /** The container's output ended (it exited). */
  end(): void;
}

/** Largest stdin piece sent in one request (the monitor caps request lines at 1 MiB). */
const STDIN_PIECE = 256 * 1024;

interface HeldPipes {
  stdout?: number;
  stderr?: number;
  stdin?: number;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}

/**
 * Held FIFO ends, by container dir: per process, not per connection, so a client made
 * after a reconnect releases what an earlier one held.
 */
const held = new Map<string, HeldPipes>();

interface Pending {
  /** `binary`: the raw bytes that followed the response's line (empty if none). */
  resolve(v: unknown, binary: Buffer): void;
  reject(e: Error): void;
}



const ERROR_KINDS = new Set<ErrorKind>([
  "invalid_argument", "not_found", "already_exists", "failed_precondition", "resource_exhausted",
  "deadline_exceeded", "unavailable", "permission_denied", "unimplemented", "internal",
]);

type Message = Response | ExitEvent | OutputEvent | OutputEndEvent;

/** Raw bytes follow the line of an output event, and of an answer that says so (ExecSync). */
function bytesFollowing(msg: Message): number {
  if ("event" in msg) return msg.event === "output" ? msg.binary : 0;
  return msg.ok ? (msg.binary ?? 0) : 0;
}

function parseMessage(line: string): Message | undefined {
  if (line === "") return undefined;
  try {
    return JSON.parse(line) as Message;
  } catch {
    return undefined;
  }
}

export class MonitorClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly exitFns: Array<(id: string, exit: ExitInfo) => void> = [];
  private readonly closeFns: Array<() => void> = [];
  private readonly outputHandlers = new Map<string, OutputHandler>();
  private subscribed = false;
  private closed = false;
  private readonly stateDir: string;

  private constructor(
    private readonly sock: net.Socket,
    readonly socketPath: string,
  ) {
    this.stateDir = dirname(socketPath);
    const reader = new FrameReader<Message>(parseMessage, bytesFollowing, (msg, bytes) => this.receive(msg, bytes));
    sock.on("data", (data: Buffer) => reader.feed(data));
    sock.on("error", () => undefined);
    sock.on("close", () => this.onClosed());
  }

  static connect(path: string): Promise<MonitorClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(path);
      const fail = (err: Error) => {
        sock.destroy();
        reject(unavailable(`cannot connect to the monitor at ${path}: ${errorMessage(err)}`, err));
      };
      sock.once("error", fail);
      sock.once("connect", () => {
        sock.off("error", fail);
        resolve(new MonitorClient(sock, path));
      });
    });
  }

  private receive(msg: Message, bytes: Buffer): void {
    if ("event" in msg) {
      if (msg.event === "exit") for (const fn of this.exitFns) fn(msg.container, msg.exit);
      else if (msg.event === "output") this.outputHandlers.get(msg.container)?.output(msg.stream, bytes);
      else if (msg.event === "outputEnd") {
        const h = this.outputHandlers.get(msg.container);
        this.outputHandlers.delete(msg.container);
        h?.end();
      }
      return;
    }
    const p = this.pending.get(msg.id);
    if (p === undefined) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result, bytes);
    else {
      const kind = ERROR_KINDS.has(msg.error.kind) ? msg.error.kind : "internal";
      p.reject(new CribError(kind, msg.error.message));
    }
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(unavailable("the connection to the monitor closed"));
    this.pending.clear();
    // An attach ends with its connection (the monitor restarted, or we closed it).
    for (const h of this.outputHandlers.values()) h.end();
    this.outputHandlers.clear();
    for (const fn of this.closeFns) fn();
  }

  private call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.callWithBytes<T>(op, args).then((r) => r.result);
  }

  /** A call whose answer may be followed by raw bytes. */
  private callWithBytes<T>(op: string, args: Record<string, unknown> = {}, payload?: Uint8Array): Promise<{ result: T; binary: Buffer }> {
    if (this.closed) return Promise.reject(unavailable("the connection to the monitor is closed"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: (result, binary) => resolve({ result: result as T, binary }), reject });
      if (payload === undefined || payload.length === 0) {
        this.sock.write(JSON.stringify({ id, op, ...args }) + "\n");
      } else {
        this.sock.write(JSON.stringify({ id, op, ...args, binary: payload.length }) + "\n");
        this.sock.write(payload);
      }
    });
  }

  /** `runc create`; the container is "created". Idempotent: an existing id returns its state. */
  create(req: CreateRequest): Promise<ContainerState> {
    return this.call("create", { req });
  }
  /** `runc start`. */
  start(id: string): Promise<ContainerState> {
    return this.call("start", { container: id });
  }
  /** `runc kill [--all] id signal`; a container that already exited is fine. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.call("kill", { container: id, signal, all });
  }
  /** The container's state; a not_found CribError when the monitor does not know it. */
  state(id: string): Promise<ContainerState> {
    return this.call("state", { container: id });
  }
  list(): Promise<ContainerState[]> {
    return this.call("list");
  }
  /** ExecSync: each stream capped at maxOutputBytes (marked when cut); the timeout kills the process. */
  async exec(req: ExecRequest): Promise<ExecResult> {
    const { result: r, binary } = await this.callWithBytes<WireExecResult>("exec", { req });
    if (r.stdoutBytes > binary.length) throw internal(`the monitor's exec answer says ${r.stdoutBytes} bytes of stdout but sent ${binary.length} in all`);
    return { exitCode: r.exitCode, stdout: binary.subarray(0, r.stdoutBytes), stderr: binary.subarray(r.stdoutBytes), timedOut: r.timedOut, truncated: r.truncated };
  }
  /** Close and reopen the log path (after the kubelet rotated it). */
  async reopenLog(id: string): Promise<void> {
    await this.call("reopenLog", { container: id });
  }
  /** Close the write ends of stdin we and the monitor hold (stdinOnce, after the first attach ended): the container reads EOF. */
  async closeStdin(id: string): Promise<void> {
    const h = held.get(containerDir(this.stateDir, id));
    if (h?.stdin !== undefined) {
      closeQuietly(h.stdin);
      delete h.stdin;
    }
    await this.call("closeStdin", { container: id });
  }
  /**
   * Get a copy of a container's output from now on, until it exits (CRI Attach).
   * Use a connection of its own (MonitorClient.connect) and close it to detach.
   */
  async attach(id: string, streams: { stdout: boolean; stderr: boolean }, handler: OutputHandler): Promise<AttachInfo> {
    this.outputHandlers.set(id, handler);
    try {
      return await this.call<AttachInfo>("attach", { container: id, stdout: streams.stdout, stderr: streams.stderr });
    } catch (err) {
      this.outputHandlers.delete(id);
      throw err;
    }
  }
  /** Write to a container's stdin (created with stdin: its FIFO, or its terminal); resolves once written. */
  async writeStdin(id: string, data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length; off += STDIN_PIECE) {
      const piece = data.subarray(off, Math.min(data.length, off + STDIN_PIECE));
      await this.callWithBytes("writeStdin", { container: id }, piece);
    }
  }
  /** Resize a TTY container's terminal (a no-op for others). */
  async resize(id: string, width: number, height: number): Promise<void> {
    await this.call("resize", { container: id, width, height });
  }
  /** `runc delete --force`, FIFOs and state removed. Idempotent. */
  async delete(id: string): Promise<void> {
    await this.call("delete", { container: id });
  }
  info(): Promise<MonitorInfo> {
    return this.call("info");
  }
  /**
   * Ask the monitor to re-exec itself as `command` (+ its flags). Containers keep running
   * as its children; this connection closes, reconnect with ensureMonitor().
   */
  async upgrade(command: string[]): Promise<void> {
    await this.call("upgrade", { command });
  }

  /** Exit events of every container, from now on. */
  onExit(fn: (id: string, exit: ExitInfo) => void): void {
    this.exitFns.push(fn);
    if (!this.subscribed) {
      this.subscribed = true;
      this.call("subscribe").catch(() => undefined);
    }
  }

  /** Called once when the connection ends (the monitor stopped or re-exec'd). */
  onClose(fn: () => void): void {
    this.closeFns.push(fn);
  }

  /**
   * Be the second holder of a container's stdio FIFOs: open the read ends of stdout and
   * stderr and keep them, never reading, so the container's writes never fail with
   * EPIPE while no monitor runs (they block once the pipe buffer is full, and a new
   * monitor reads on). With a stdin FIFO (and `stdin` not false), also hold a write end
   * so the container sees no EOF on stdin while no monitor runs; closeStdin() drops it.
   */
  holdPipes(id: string, opts: { stdin?: boolean } = {}): void {
    if (!isValidContainerId(id)) throw invalidArgument(`invalid container id ${JSON.stringify(id)}`);
    const dir = containerDir(this.stateDir, id);
    if (held.has(dir)) return;
    // A TTY container has no FIFOs: its stdio is a terminal whose master the monitor holds.
    if (!existsSync(`${dir}/stdout`) && readState(dir)?.tty === true) return;
    const h: HeldPipes = {};
    try {
      h.stdout = openSync(`${dir}/stdout`, constants.O_RDONLY | constants.O_NONBLOCK);
      h.stderr = openSync(`${dir}/stderr`, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      for (const fd of Object.values(h)) closeQuietly(fd);
      throw notFound(`hold the output FIFOs of container ${id} in ${dir}: ${errorMessage(err)}`, err);
    }
    if (opts.stdin !== false && existsSync(`${dir}/stdin`)) {
      try {
        h.stdin = openSync(`${dir}/stdin`, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        // ENXIO: the container no longer reads stdin
      }
    }
    held.set(dir, h);
  }

  releasePipes(id: string): void {
    const dir = containerDir(this.stateDir, id);
    for (const fd of Object.values(held.get(dir) ?? {})) closeQuietly(fd);
    held.delete(dir);
  }

  /** Close the connection (held pipes stay held until releasePipes). */
  close(): void {
    this.sock.destroy();
    this.onClosed();
  }
}

export interface EnsureMonitorOptions {
  /** The monitor's state dir (DIR/monitor.sock ...). */
  state: string;
  /** The argv that runs the monitor face: [process.execPath, "monitor"], or [bun, "src/faces/dispatch.ts", "monitor"] from source. */
  command: string[];
  logLevel?: string;
  timeoutMs?: number;
}

/** Connect to the monitor of `state`, starting it (detached, its own session) if none runs. */
export async function ensureMonitor(opts: EnsureMonitorOptions): Promise<MonitorClient> {
  const sock = socketPath(opts.state);
  if (existsSync(sock)) {
    try {
      return await MonitorClient.connect(sock);
    } catch {
      // stale socket: start one
    }
  }
  if (opts.command.length === 0) throw invalidArgument("ensureMonitor: empty command");
  mkdirSync(opts.state, { recursive: true, mode: 0o700 });
  const logPath = `${opts.state}/monitor.log`;
  const logFd = openSync(logPath, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "CRIB_MONITOR_INHERIT"]) delete env[k];
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn([...opts.command, "--state", opts.state, "--log-level", opts.logLevel ?? "info"], {
      detached: true,
      stdio: ["ignore", logFd, logFd],
      env,
    });
  } finally {
    closeSync(logFd);
  }
  proc.unref();
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = performance.now() + timeoutMs; // monotonic: the wall clock may jump
  for (;;) {
    if (existsSync(sock)) {
      try {
        return await MonitorClient.connect(sock);
      } catch {
        // not accepting yet
      }
    }
    // Exit 0 means another monitor won the lock: keep waiting for its socket.
    if (proc.exitCode !== null && proc.exitCode !== 0) {
      throw unavailable(`the monitor (${opts.command.join(" ")}) exited with code ${proc.exitCode} before listening; ${logPath} ends with:\n${tail(logPath)}`);
    }
    if (performance.now() > deadline) throw unavailable(`the monitor did not listen on ${sock} within ${timeoutMs} ms; ${logPath} ends with:\n${tail(logPath)}`);
    await Bun.sleep(25);
  }
}

function tail(path: string, lines = 10): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
