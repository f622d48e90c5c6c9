// The client's side of an exec or attach, whatever carries it: SPDY/3.1 streams named
// by their streamType header (v2-v4.channel.k8s.io), or one WebSocket with a channel
// byte in front of every message (v4/v5.channel.k8s.io). Sessions (exec, attach) see
// only this interface.

import { log } from "../log/logger.ts";
import type { SpdyConnection, SpdyStream } from "./spdy_connection.ts";
import { RstStatus } from "./spdy_frames.ts";
import { legacyErrorText, ResizeDecoder, statusFor, type CommandOutcome, type TerminalSize } from "./status.ts";
import type { WebSocketConnection } from "./websocket.ts";

const logger = log.with({ component: "stream" });

export interface CommandOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** What the client sends, in order. */
export interface CommandReceiver {
  stdin(chunk: Uint8Array): void;
  /** The client closed stdin (EOF). */
  stdinEnd(): void;
  resize(size: TerminalSize): void;
  /** The client is gone (connection closed) before finish(). */
  closed(): void;
}

export interface CommandChannel {
  readonly protocol: string;
  readonly options: CommandOptions;
  /** The client can send terminal sizes (a TTY, and a protocol with resize). */
  readonly hasResize: boolean;
  /** Start delivering what the client sends (events before this are kept). */
  receive(r: CommandReceiver): void;
  /** Resolves when the transport can take more. */
  writeStdout(chunk: Uint8Array): Promise<void>;
  writeStderr(chunk: Uint8Array): Promise<void>;
  /** Bytes queued towards the client and not yet written to the socket. */
  backlog(): number;
  /** Stop (and resume) reading from the client, while stdin cannot be delivered. */
  pauseInput(): void;
  resumeInput(): void;
  /** End the output streams, report the outcome and close. */
  finish(outcome: CommandOutcome): void;
}

/** How long the client has to open its streams (the kubelet's streamCreationTimeout). */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;
/** After finishing, how long the client has to close the connection before we drop it. */
const CLOSE_GRACE_MS = 2_000;

type Event = { t: "stdin"; chunk: Uint8Array } | { t: "stdinEnd" } | { t: "resize"; size: TerminalSize } | { t: "closed" };

/** Keeps client events until a receiver is set. */
class Inbox {
  private receiver: CommandReceiver | undefined;
  private queue: Event[] = [];
  private stdinEnded = false;
  private closedOnce = false;

  set(r: CommandReceiver): void {
    this.receiver = r;
    for (const e of this.queue.splice(0)) this.dispatch(e);
  }

  push(e: Event): void {
    if (e.t === "stdinEnd") {
      if (this.stdinEnded) return;
      this.stdinEnded = true;
    }
    if (e.t === "closed") {
      if (this.closedOnce) return;
      this.closedOnce = true;
    }
    if (this.receiver) this.dispatch(e);
    else this.queue.push(e);
  }

  private dispatch(e: Event): void {
    const r = this.receiver!;
    switch (e.t) {
      case "stdin":
        return r.stdin(e.chunk);
      case "stdinEnd":
        return r.stdinEnd();
      case "resize":
        return r.resize(e.size);
      case "closed":
        return r.closed();
    }
  }
}

/** "v4.channel.k8s.io" -> 4. */
export function channelVersion(protocol: string): number {
  const m = /^v(\d+)\.channel\.k8s\.io$/.exec(protocol);
  return m ? Number(m[1]) : 1;
}

const STREAM_TYPES = ["error", "stdin", "stdout", "stderr", "resize"] as const;
type StreamType = (typeof STREAM_TYPES)[number];

/**
 * Wait for the streams the client must open for `opts` (error, then stdin/stdout/stderr
 * as asked, and resize for a TTY from v3 on), then speak over them.
 */
export function spdyCommandChannel(conn: SpdyConnection, protocol: string, opts: CommandOptions, timeoutMs = STREAM_CREATION_TIMEOUT_MS): Promise<CommandChannel> {
  const version = channelVersion(protocol);
  const expected = new Set<StreamType>(["error"]);
  if (opts.stdin) expected.add("stdin");
  if (opts.stdout) expected.add("stdout");
  if (opts.stderr) expected.add("stderr");
  if (opts.tty && version >= 3) expected.add("resize");
  const got = new Map<StreamType, SpdyStream>();
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      conn.destroy();
      reject(new Error(`the client opened ${[...got.keys()].join(", ") || "no streams"} but not ${[...expected].filter((t) => !got.has(t)).join(", ")} within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.onClose(() => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error("the client closed the connection before opening its streams"));
    });
    conn.onStream((s) => {
      const type = (s.header("streamtype") ?? "") as StreamType;
      if (settled || !expected.has(type) || got.has(type)) {
        logger.debug("refusing an unexpected stream", { streamType: type, stream: s.id });
        s.reset(RstStatus.REFUSED_STREAM);
        return;
      }
      got.set(type, s);
      if (got.size === expected.size) {
        settled = true;
        clearTimeout(timer);
        resolve(new SpdyCommandChannel(conn, protocol, version, opts, got));
      }
    });
  });
}

class SpdyCommandChannel implements CommandChannel {
  private readonly inbox = new Inbox();
  private finished = false;
  readonly hasResize: boolean;

  constructor(
    private readonly conn: SpdyConnection,
    readonly protocol: string,
    private readonly version: number,
    readonly options: CommandOptions,
    private readonly streams: Map<StreamType, SpdyStream>,
  ) {
    this.hasResize = streams.has("resize");
    streams.get("stdin")?.read({
      data: (c) => this.inbox.push({ t: "stdin", chunk: c }),
      end: () => this.inbox.push({ t: "stdinEnd" }),
    });
    const resize = streams.get("resize");
    if (resize) {
      const dec = new ResizeDecoder();
      resize.read({
        data: (c) => {
          try {
            for (const size of dec.push(c)) this.inbox.push({ t: "resize", size });
          } catch (err) {
            logger.debug("bad resize message; ignoring the resize stream", { err: (err as Error).message });
            resize.reset(RstStatus.PROTOCOL_ERROR);
          }
        },
        end: () => undefined,
      });
    }
    conn.onClose(() => {
      if (this.finished) return;
      this.inbox.push({ t: "stdinEnd" });
      this.inbox.push({ t: "closed" });
    });
  }

  receive(r: CommandReceiver): void {
    this.inbox.set(r);
  }

  private async write(type: "stdout" | "stderr", chunk: Uint8Array): Promise<void> {
    const s = this.streams.get(type);
    if (s === undefined || s.localEnded || chunk.length === 0) return;
    if (!s.write(chunk)) await s.drain();
  }

  writeStdout(chunk: Uint8Array): Promise<void> {
    return this.write("stdout", chunk);
  }

  writeStderr(chunk: Uint8Array): Promise<void> {
    return this.write("stderr", chunk);
  }

  backlog(): number {
    return this.conn.socket.writableLength;
  }

  pauseInput(): void {
    this.conn.pauseInput();
  }

  resumeInput(): void {
    this.conn.resumeInput();
  }

  finish(outcome: CommandOutcome): void {
    if (this.finished) return;
    this.finished = true;
    this.streams.get("stdout")?.end();
    this.streams.get("stderr")?.end();
    const err = this.streams.get("error")!;
    const body = this.version >= 4 ? JSON.stringify(statusFor(outcome)) : legacyErrorText(outcome);
    if (body !== "") err.write(Buffer.from(body, "utf8"));
    err.end();
    for (const t of ["stdin", "resize"] as const) {
      const s = this.streams.get(t);
      if (s && !s.remoteEnded) s.reset(RstStatus.CANCEL);
    }
    this.conn.goAway();
    // The client closes once it has read everything; closing first could make a Go
    // client drop frames it has read but not yet handled.
    const timer = setTimeout(() => this.conn.destroy(), CLOSE_GRACE_MS);
    this.conn.onClose(() => clearTimeout(timer));
  }
}

/** The channel bytes of the WebSocket protocols. */
export const Channel = { STDIN: 0, STDOUT: 1, STDERR: 2, ERROR: 3, RESIZE: 4, CLOSE: 255 } as const;

/** exec/attach over a WebSocket (v4.channel.k8s.io, or v5 which adds the close signal). */
export class WsCommandChannel implements CommandChannel {
  private readonly inbox = new Inbox();
  private readonly resize = new ResizeDecoder();
  private finished = false;
  private pauses = 0;
  readonly hasResize: boolean;

  constructor(
    private readonly ws: WebSocketConnection,
    readonly protocol: string,
    readonly options: CommandOptions,
  ) {
    this.hasResize = options.tty;
    const v5 = channelVersion(protocol) >= 5;
    ws.onMessage((data) => {
      if (data.length === 0) return;
      const ch = data[0];
      const body = data.subarray(1);
      if (ch === Channel.STDIN && options.stdin) {
        if (body.length > 0) this.inbox.push({ t: "stdin", chunk: body });
      } else if (ch === Channel.RESIZE && options.tty) {
        try {
          for (const size of this.resize.push(body)) this.inbox.push({ t: "resize", size });
        } catch (err) {
          logger.debug("bad resize message ignored", { err: (err as Error).message });
        }
      } else if (ch === Channel.CLOSE && v5 && body[0] === Channel.STDIN) {
        this.inbox.push({ t: "stdinEnd" });
      }
    });
    ws.onClose(() => {
      if (this.finished) return;
      this.inbox.push({ t: "stdinEnd" });
      this.inbox.push({ t: "closed" });
    });
    // The kubelet sends an empty message on the lowest writable channel to say the
    // connection is established; clients wait for it.
    const first = options.stdout ? Channel.STDOUT : options.stderr ? Channel.STDERR : Channel.ERROR;
    ws.send(Uint8Array.of(first));
  }

  receive(r: CommandReceiver): void {
    this.inbox.set(r);
  }

  private async write(ch: number, chunk: Uint8Array): Promise<void> {
    if (this.finished || chunk.length === 0) return;
    const msg = Buffer.allocUnsafe(chunk.length + 1);
    msg[0] = ch;
    msg.set(chunk, 1);
    if (!this.ws.send(msg)) await this.ws.drain();
  }

  writeStdout(chunk: Uint8Array): Promise<void> {
    return this.options.stdout ? this.write(Channel.STDOUT, chunk) : Promise.resolve();
  }

  writeStderr(chunk: Uint8Array): Promise<void> {
    return this.options.stderr ? this.write(Channel.STDERR, chunk) : Promise.resolve();
  }

  backlog(): number {
    return this.ws.socket.writableLength;
  }

  pauseInput(): void {
    if (this.pauses++ === 0) this.ws.socket.pause();
  }

  resumeInput(): void {
    if (this.pauses > 0 && --this.pauses === 0) this.ws.socket.resume();
  }

  finish(outcome: CommandOutcome): void {
    if (this.finished) return;
    this.finished = true;
    const body = Buffer.from(JSON.stringify(statusFor(outcome)), "utf8");
    this.ws.send(Buffer.concat([Uint8Array.of(Channel.ERROR), body]));
    this.ws.close(1000, "", CLOSE_GRACE_MS);
  }
}
