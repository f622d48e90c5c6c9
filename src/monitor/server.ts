// The monitor's socket: newline-delimited JSON requests in, responses and exit events out.

import net from "node:net";
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

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");

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

export class MonitorServer {
  private readonly server: net.Server;
  private readonly subscribers = new Set<net.Socket>();
  private readonly sockets = new Set<net.Socket>();
  /** Detach functions of the attaches each connection made. */
  private readonly attached = new Map<net.Socket, Array<() => void>>();
  private readonly log = log.with({ component: "monitor" });

  constructor(
    private readonly monitor: Monitor,
    private readonly hooks: ServerHooks,
  ) {
    this.server = net.createServer((sock) => this.accept(sock));
    this.server.on("error", (err) => this.log.error("monitor socket error", { err: errorMessage(err) }));
    monitor.onExit((container, exit) => {
      const line = JSON.stringify({ event: "exit", container, exit } satisfies ExitEvent) + "\n";
      for (const s of this.subscribers) s.write(line);
    });
  }

  /** Serve on an already listening socket fd (ours, or inherited across execve). */
  listen(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ fd }, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  /** Drop every client connection (before an execve: clients reconnect to the new image). */
  closeConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (data: string) => {
      buf += data;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== "") void this.handle(sock, line);
      }
      if (buf.length > MAX_REQUEST_BYTES) {
        this.log.warn("closing a connection that sent an oversized request", { bytes: buf.length });
        sock.destroy();
      }
    });
    sock.on("error", () => undefined);
    sock.on("close", () => {
      this.sockets.delete(sock);
      this.subscribers.delete(sock);
      for (const detach of this.attached.get(sock) ?? []) detach();
      this.attached.delete(sock);
    });
  }

  /** Send this connection a copy of the container's output (and outputEnd) until it closes. */
  private attach(sock: net.Socket, container: string, stdout: boolean, stderr: boolean) {
    let dropping = false;
    const { info, detach } = this.monitor.attach(container, {
      output: (stream, chunk) => {
        if (sock.destroyed || (stream === "stdout" ? !stdout : !stderr)) return;
        if (sock.writableLength > ATTACH_BACKLOG_BYTES) {
          if (!dropping) this.log.warn("an attached client is not keeping up; dropping its copy of the output (the log keeps everything)", { container });
          dropping = true;
          return;
        }
        dropping = false;
        sock.write(JSON.stringify({ event: "output", container, stream, data: b64(chunk) } satisfies OutputEvent) + "\n");
      },
      end: () => {
        if (!sock.destroyed) sock.write(JSON.stringify({ event: "outputEnd", container } satisfies OutputEndEvent) + "\n");
      },
    });
    const list = this.attached.get(sock) ?? [];
    list.push(detach);
    this.attached.set(sock, list);
    return info;
  }

  private async handle(sock: net.Socket, line: string): Promise<void> {
    let id = 0;
    let resp: Response;
    let after: (() => void) | undefined;
    try {
      const msg = JSON.parse(line) as unknown;
      if (typeof msg !== "object" || msg === null || Array.isArray(msg)) throw invalidArgument("a request must be a JSON object");
      const args = msg as Args;
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
        result = await this.monitor.op(() => this.dispatch(sock, op, args));
      }
      resp = { id, ok: true, result: result ?? null };
    } catch (err) {
      const kind = err instanceof CribError ? err.kind : err instanceof SyntaxError ? "invalid_argument" : "internal";
      resp = { id, ok: false, error: { kind, message: errorMessage(err) } };
      if (kind === "internal") this.log.error("request failed", { err: errorMessage(err) });
    }
    if (sock.destroyed) return;
    sock.write(JSON.stringify(resp) + "\n", () => after?.());
  }

  private async dispatch(sock: net.Socket, op: string, args: Args): Promise<unknown> {
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
        return { exitCode: r.exitCode, stdout: b64(r.stdout), stderr: b64(r.stderr), timedOut: r.timedOut, truncated: r.truncated } satisfies WireExecResult;
      }
      case "reopenLog":
        return m.reopenLog(str(args, "container"));
      case "closeStdin":
        return m.closeStdin(str(args, "container"));
      case "delete":
        return m.delete(str(args, "container"));
      case "subscribe":
        this.subscribers.add(sock);
        return null;
      case "attach":
        return this.attach(sock, str(args, "container"), args.stdout !== false, args.stderr !== false);
      case "writeStdin": {
        const data = args.data;
        if (typeof data !== "string") throw invalidArgument("writeStdin needs data: a base64 string");
        await m.writeStdin(str(args, "container"), Buffer.from(data, "base64"));
        return null;
      }
      case "resize":
        return m.resize(str(args, "container"), num(args, "width"), num(args, "height"));
      case "info":
        return this.hooks.info();
      default:
        throw invalidArgument(`unknown op ${JSON.stringify(op)}`);
    }
  }
}
