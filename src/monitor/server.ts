// The monitor's socket: newline-delimited JSON requests in, responses and exit events out.
// Served with Bun's native sockets, not node:net: the monitor stays resident, and
// node:net's JavaScript (streams, events) cost it ~1.8 MiB of heap.

import type { Socket, SocketListener } from "bun";
import { FrameReader, OversizedLine } from "./framing.ts";
import { CribError, errorMessage, invalidArgument } from "../errors.ts";
import { log } from "../log/logger.ts";
import type { Monitor } from "./monitor.ts";
import { MAX_REQUEST_BYTES, type ExitEvent, type MonitorInfo, type OutputEndEvent, type OutputEvent, type Response, type WireExecResult } from "./protocol.ts";

export interface ServerHooks {
  info(): MonitorInfo;
  /** Check that `command` runs (`--preflight`) before agreeing to upgrade; throws why not. */
  preflight(command: string[]): Promise<void>;
  /** Re-exec the monitor; called after the ok response went out. */
  upgrade(command: string[]): void;
}

type Args = Record<string, unknown>;

function str(args: Args, key: string): string {
  const v = args[key];
  if (typeof v !== "string") throw invalidArgument(`request field ${key} must be a string`);
  return v;
}

function num(args: Args, key: string): number {
  const v = args[key];
  if (typeof v !== "number") throw invalidArgument(`request field ${key} must be a number`);
  return v;
}


/**
 * An attach connection whose reader lags this far behind loses output (the log still
 * has it): a slow client must never hold up a container or the monitor.
 */
const ATTACH_BACKLOG_BYTES = 8 * 1024 * 1024;

/** An ExecSync answer this big leaves tens of MB of garbage (buffers, base64, JSON). */
const BIG_EXEC_BYTES = 1024 * 1024;
let gcTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * The monitor stays resident next to every container: once big exec answers
 * are sent and things are quiet, give their memory back (the engine's
 * collector is lazy about large external buffers) instead of keeping the peak.
 */
function collectSoon(): void {
  if (gcTimer !== undefined) clearTimeout(gcTimer);
  gcTimer = setTimeout(() => {
    gcTimer = undefined;
    Bun.gc(true);
  }, 1000);
  gcTimer.unref();
}

/**
 * One client connection: the bytes it sent that do not yet end a line, and what we
 * wrote that the kernel has not taken yet (Bun's write() may take only part; the rest
 * goes out on drain).
 */
class Connection {
  reader: FrameReader<Args> | undefined;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private flushedCallbacks: Array<() => void> = [];
  closed = false;
  private static readonly encoder = new TextEncoder();

  constructor(readonly socket: Socket<undefined>) {}

  /** Bytes written but not yet taken by the kernel. */
  get backlog(): number {
    return this.queued;
  }

  /** Queue `text`; `flushed` runs once it (and all before it) reached the kernel. */
  write(text: string, flushed?: () => void): void {
    this.writeBytes(Connection.encoder.encode(text), flushed);
  }

  /** Queue raw bytes (the output after an exec answer's line). */
  writeBytes(bytes: Uint8Array, flushed?: () => void): void {
    if (this.closed) return;
    if (this.queued === 0) {
      const n = this.socket.write(bytes);
      if (n >= bytes.length) {
        flushed?.();
        return;
      }
      this.queue.push(bytes.subarray(Math.max(0, n)));
      this.queued = bytes.length - Math.max(0, n);
    } else {
      this.queue.push(bytes);
      this.queued += bytes.length;
    }
    if (flushed) this.flushedCallbacks.push(flushed);
  }

  /** The kernel can take more: write what is queued, in order. */
  drain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.socket.write(head);
      if (n < head.length) {
        this.queue[0] = head.subarray(Math.max(0, n));
        this.queued -= Math.max(0, n);
        return;
      }
      this.queue.shift();
      this.queued -= head.length;
    }
    const done = this.flushedCallbacks;
    this.flushedCallbacks = [];
    for (const f of done) f();
  }

  destroy(): void {
    this.closed = true;
    this.socket.terminate();
  }
}

/** An exec's answer: its line, and the output sent raw after it. */
class ExecAnswer {
  constructor(
    readonly wire: WireExecResult,
    readonly stdout: Uint8Array,
    readonly stderr: Uint8Array,
  ) {}
}

export class MonitorServer {
  private listener: SocketListener<undefined> | undefined;
  private readonly subscribers = new Set<Connection>();
  private readonly connections = new Map<Socket<undefined>, Connection>();
  /** Detach functions of the attaches each connection made. */
  private readonly attached = new Map<Connection, Array<() => void>>();
  private readonly log = log.with({ component: "monitor" });

  constructor(
    private readonly monitor: Monitor,
    private readonly hooks: ServerHooks,
  ) {
    monitor.onExit((container, exit) => {
      const line = JSON.stringify({ event: "exit", container, exit } satisfies ExitEvent) + "\n";
      for (const c of this.subscribers) c.write(line);
    });
  }

  /** Serve on an already listening socket fd (ours, or inherited across execve). */
  listen(fd: number): Promise<void> {
    // Bun.listen takes a listening fd, though its types only declare it for connect.
    const listen = Bun.listen as unknown as (o: { fd: number; socket: import("bun").SocketHandler<undefined> }) => SocketListener<undefined>;
    this.listener = listen({
      fd,
      socket: {
        open: (sock) => {
          const c = new Connection(sock);
          c.reader = new FrameReader<Args>(
            (line) => this.parseRequest(c, line),
            (args) => (typeof args.binary === "number" && args.binary > 0 ? args.binary : 0),
            (args, bytes) => void this.handle(c, args, bytes),
            MAX_REQUEST_BYTES,
          );
          this.connections.set(sock, c);
        },
        data: (sock, data) => {
          const c = this.connections.get(sock);
          if (c) this.receive(c, data);
        },
        drain: (sock) => this.connections.get(sock)?.drain(),
        close: (sock) => this.closed(sock),
        error: (sock) => this.closed(sock),
      },
    });
    return Promise.resolve();
  }

  /** Drop every client connection (before an execve: clients reconnect to the new image). */
  closeConnections(): void {
    for (const c of this.connections.values()) c.destroy();
  }

  private receive(c: Connection, data: Uint8Array): void {
    try {
      c.reader?.feed(data);
    } catch (err) {
      if (!(err instanceof OversizedLine)) throw err;
      this.log.warn("closing a connection that sent an oversized request", { err: err.message });
      c.destroy();
    }
  }

  /** A request line as an object; a line that is not one is answered (id 0) and skipped. */
  private parseRequest(c: Connection, line: string): Args | undefined {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch (err) {
      c.write(JSON.stringify({ id: 0, ok: false, error: { kind: "invalid_argument", message: errorMessage(err) } } satisfies Response) + "\n");
      return undefined;
    }
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
      c.write(JSON.stringify({ id: 0, ok: false, error: { kind: "invalid_argument", message: "a request must be a JSON object" } } satisfies Response) + "\n");
      return undefined;
    }
    return msg as Args;
  }

  private closed(sock: Socket<undefined>): void {
    const c = this.connections.get(sock);
    if (!c) return;
    c.closed = true;
    this.connections.delete(sock);
    this.subscribers.delete(c);
    for (const detach of this.attached.get(c) ?? []) detach();
    this.attached.delete(c);
  }

  /** Send this connection a copy of the container's output (and outputEnd) until it closes. */
  private attach(c: Connection, container: string, stdout: boolean, stderr: boolean) {
    let dropping = false;
    const { info, detach } = this.monitor.attach(container, {
      output: (stream, chunk) => {
        if (c.closed || (stream === "stdout" ? !stdout : !stderr)) return;
        if (c.backlog > ATTACH_BACKLOG_BYTES) {
          if (!dropping) this.log.warn("an attached client is not keeping up; dropping its copy of the output (the log keeps everything)", { container });
          dropping = true;
          return;
        }
        dropping = false;
        c.write(JSON.stringify({ event: "output", container, stream, binary: chunk.length } satisfies OutputEvent) + "\n");
        c.writeBytes(chunk);
      },
      end: () => c.write(JSON.stringify({ event: "outputEnd", container } satisfies OutputEndEvent) + "\n"),
    });
    const list = this.attached.get(c) ?? [];
    list.push(detach);
    this.attached.set(c, list);
    return info;
  }

  private async handle(c: Connection, args: Args, bytes: Buffer): Promise<void> {
    let id = 0;
    let resp: Response;
    let after: (() => void) | undefined;
    let binary: Uint8Array[] = [];
    try {
      if (typeof args.id !== "number") throw invalidArgument("a request needs a numeric id");
      id = args.id;
      const op = str(args, "op");
      let result: unknown;
      if (op === "upgrade") {
        const cmd = args.command;
        if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((a) => typeof a === "string")) throw invalidArgument("upgrade needs command: a non-empty list of strings");
        await this.hooks.preflight(cmd as string[]);
        result = null;
        after = () => this.hooks.upgrade(cmd as string[]);
      } else {
        result = await this.monitor.op(() => this.dispatch(c, op, args, bytes));
      }
      if (result instanceof ExecAnswer) {
        binary = [result.stdout, result.stderr];
        resp = { id, ok: true, result: result.wire, binary: result.stdout.length + result.stderr.length };
      } else {
        resp = { id, ok: true, result: result ?? null };
      }
    } catch (err) {
      const kind = err instanceof CribError ? err.kind : err instanceof SyntaxError ? "invalid_argument" : "internal";
      resp = { id, ok: false, error: { kind, message: errorMessage(err) } };
      if (kind === "internal") this.log.error("request failed", { err: errorMessage(err) });
    }
    c.write(JSON.stringify(resp) + "\n", after);
    for (const b of binary) c.writeBytes(b);
  }

  private async dispatch(c: Connection, op: string, args: Args, bytes: Buffer): Promise<unknown> {
    const m = this.monitor;
    switch (op) {
      case "create":
        return m.create(args.req as Parameters<Monitor["create"]>[0]);
      case "start":
        return m.start(str(args, "container"));
      case "kill":
        return m.kill(str(args, "container"), str(args, "signal"), args.all === true);
      case "state":
        return m.state(str(args, "container"));
      case "list":
        return m.list();
      case "exec": {
        const r = await m.exec(args.req as Parameters<Monitor["exec"]>[0]);
        if (r.stdout.length + r.stderr.length > BIG_EXEC_BYTES) collectSoon();
        return new ExecAnswer({ exitCode: r.exitCode, stdoutBytes: r.stdout.length, timedOut: r.timedOut, truncated: r.truncated }, r.stdout, r.stderr);
      }
      case "reopenLog":
        return m.reopenLog(str(args, "container"));
      case "closeStdin":
        return m.closeStdin(str(args, "container"));
      case "delete":
        return m.delete(str(args, "container"));
      case "subscribe":
        this.subscribers.add(c);
        return null;
      case "attach":
        return this.attach(c, str(args, "container"), args.stdout !== false, args.stderr !== false);
      case "writeStdin":
        // The bytes follow the request's line (`binary`).
        await m.writeStdin(str(args, "container"), bytes);
        return null;
      case "resize":
        return m.resize(str(args, "container"), num(args, "width"), num(args, "height"));
      case "info":
        return this.hooks.info();
      default:
        throw invalidArgument(`unknown op ${JSON.stringify(op)}`);
    }
  }
}
