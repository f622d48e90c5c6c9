// gRPC over our HTTP/2 connection (src/h2/): unary and server-streaming calls,
// as the gRPC HTTP/2 protocol describes them — length-prefixed messages, the
// status in trailers, `grpc-timeout` deadlines, cancellation by RST_STREAM.
// Services are tables of routes keyed by path ("/runtime.v1.RuntimeService/Version").
import { H2Connection, headerBlock, type H2Stream, type StreamListener } from "../h2/connection.ts";
import { GrpcStatus } from "../protocol/grpc_status.ts";
import { frameMessage, MESSAGE_PREFIX } from "./message.ts";

/** A call's status other than OK: what the client receives in `grpc-status`/`grpc-message`. */
export class GrpcError extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(details);
  }
}

export interface CallInfo {
  /** The method's path. */
  path: string;
  /** Aborted when the client cancels, its deadline passes or the connection closes. */
  readonly signal: AbortSignal;
}

export type Route =
  | { kind: "unary"; decode(bytes: Uint8Array): unknown; encode(value: unknown): Uint8Array; handle(request: unknown, call: CallInfo): Promise<unknown> }
  | { kind: "stream"; decode(bytes: Uint8Array): unknown; encode(value: unknown): Uint8Array; handle(request: unknown, send: (message: unknown) => boolean, call: CallInfo): Promise<void> };

export interface GrpcServerOptions {
  routes: Map<string, Route>;
  /** Largest request and response message, in octets. */
  maxMessage: number;
  /** What a rejected handler's error becomes (anything not a GrpcError). */
  toStatus(err: unknown, path: string): GrpcError;
  /** Peer protocol errors, for the log. */
  onProtocolError?(message: string): void;
}

const RESPONSE_HEADERS = headerBlock([[":status", "200"], ["content-type", "application/grpc"]]);
const OK_TRAILERS = headerBlock([["grpc-status", "0"]]);

/** Write what waited for the socket to drain; end it if the connection asked to. */
function flushPending(socket: Bun.Socket<Connection>): void {
  const c = socket.data;
  while (c.pending.length > 0) {
    const head = c.pending[0]!;
    const n = socket.write(head);
    if (n < head.length) {
      c.pending[0] = head.subarray(Math.max(n, 0));
      return;
    }
    c.pending.shift();
  }
  if (c.ending) socket.end();
}

interface Connection {
  conn: H2Connection;
  /** What the kernel did not take yet, in order. */
  pending: Uint8Array[];
  ending: boolean;
}

type Socket = Bun.Socket<Connection>;

export class GrpcServer {
  private readonly connections = new Set<Socket>();
  private listener: Bun.UnixSocketListener<Connection> | undefined;

  constructor(private readonly options: GrpcServerOptions) {}

  /**
   * Listen on a unix socket path. Bun's native sockets, not node:net: no stream
   * machinery between the kernel and the HTTP/2 parser on every call.
   */
  async listen(path: string): Promise<void> {
    this.listener = Bun.listen<Connection>({
      unix: path,
      socket: {
        open: (socket) => this.accept(socket),
        data: (socket, chunk) => socket.data.conn.receive(chunk),
        drain: (socket) => flushPending(socket),
        close: (socket) => {
          this.connections.delete(socket);
          socket.data.conn.transportClosed();
        },
        error: () => {}, // "close" follows; a reset by the client is not ours to log
      },
    });
  }

  /**
   * Stop accepting; ask every connection to finish (GOAWAY) and wait for its calls
   * up to `graceMs`, then close what is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.listener?.stop(false);
    for (const s of this.connections) s.data.conn.shutdown();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await Bun.sleep(10);
    for (const s of this.connections) s.terminate();
    this.listener?.stop(true);
  }

  private accept(socket: Socket): void {
    const entry: Connection = { conn: undefined as unknown as H2Connection, pending: [], ending: false };
    socket.data = entry;
    entry.conn = new H2Connection(
      {
        write: (data) => {
          if (entry.pending.length > 0) return void entry.pending.push(data);
          const n = socket.write(data);
          if (n < data.length) entry.pending.push(data.subarray(Math.max(n, 0)));
        },
        end: () => {
          entry.ending = true;
          if (entry.pending.length === 0) socket.end();
        },
      },
      { onRequest: (stream) => this.call(stream), onError: (m) => this.options.onProtocolError?.(m) },
    );
    this.connections.add(socket);
  }

  private call(stream: H2Stream): StreamListener {
    const path = stream.headers.get(":path") ?? "";
    const call = new Call(stream, path, this.options);
    const route = this.options.routes.get(path);
    if (stream.headers.get(":method") !== "POST") call.fail(new GrpcError(GrpcStatus.UNIMPLEMENTED, `${stream.headers.get(":method")} is not a gRPC method; use POST`));
    else if (!(stream.headers.get("content-type") ?? "").startsWith("application/grpc")) call.fail(new GrpcError(GrpcStatus.UNKNOWN, `content-type ${stream.headers.get("content-type")} is not application/grpc`));
    else if (!route) call.fail(new GrpcError(GrpcStatus.UNIMPLEMENTED, `unknown method ${path}`));
    else call.route = route;
    const timeout = stream.headers.get("grpc-timeout");
    if (timeout !== undefined && !call.done) call.setDeadline(timeout);
    return call;
  }
}

/** One call: gathers the request message, runs the route, answers. */
class Call implements StreamListener, CallInfo {
  route: Route | undefined;
  done = false;
  private chunks: Uint8Array[] = [];
  private received = 0;
  private controller: AbortController | undefined;
  private abortReason: Error | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private headersSent = false;

  constructor(private readonly stream: H2Stream, readonly path: string, private readonly options: GrpcServerOptions) {}

  /** Made on first use: most calls never look at it. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.abortReason && !this.controller.signal.aborted) this.controller.abort(this.abortReason);
    return this.controller.signal;
  }

  onData(chunk: Uint8Array): void {
    if (this.done) return;
    this.received += chunk.length;
    // Refuse an oversized message as soon as its length prefix says so, not after buffering it.
    if (this.chunks.length === 0 && chunk.length >= MESSAGE_PREFIX) this.checkLength(chunk);
    else if (this.received > this.options.maxMessage + MESSAGE_PREFIX) this.tooLarge(this.received - MESSAGE_PREFIX);
    if (!this.done) this.chunks.push(chunk.slice()); // a copy: the connection's buffer is reused
  }

  onEnd(): void {
    if (this.done || !this.route) return;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    if (body.length < MESSAGE_PREFIX) return this.fail(new GrpcError(GrpcStatus.INTERNAL, `${this.path}: the request has no message`));
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const compressed = view.getUint8(0);
    const length = view.getUint32(1);
    if (compressed !== 0) {
      const encoding = this.stream.headers.get("grpc-encoding") ?? "identity";
      return this.fail(encoding === "identity"
        ? new GrpcError(GrpcStatus.INTERNAL, `${this.path}: a compressed message without grpc-encoding`)
        : new GrpcError(GrpcStatus.UNIMPLEMENTED, `${this.path}: grpc-encoding ${encoding} is not supported; send messages uncompressed`));
    }
    if (length > this.options.maxMessage) return this.tooLarge(length);
    if (body.length !== MESSAGE_PREFIX + length) {
      return this.fail(new GrpcError(GrpcStatus.INTERNAL, `${this.path}: ${body.length > MESSAGE_PREFIX + length ? "more than one request message" : "the request message is cut short"}`));
    }
    let request: unknown;
    try {
      request = this.route.decode(body.subarray(MESSAGE_PREFIX));
    } catch (e) {
      return this.fail(new GrpcError(GrpcStatus.INVALID_ARGUMENT, `${this.path.slice(this.path.lastIndexOf("/") + 1)}: malformed request: ${e instanceof Error ? e.message : String(e)}`));
    }
    this.run(this.route, request);
  }

  onAbort(reason: string): void {
    this.clearDeadline();
    if (this.done) return;
    this.done = true;
    this.abort(new Error(`${this.path} cancelled: ${reason}`));
  }

  setDeadline(value: string): void {
    const ms = parseTimeout(value);
    if (ms === undefined) return this.fail(new GrpcError(GrpcStatus.INTERNAL, `grpc-timeout ${JSON.stringify(value)} is malformed`));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.done) return;
      this.fail(new GrpcError(GrpcStatus.DEADLINE_EXCEEDED, `${this.path}: deadline exceeded`));
      this.abort(new Error(`${this.path}: deadline exceeded`));
    }, Math.min(ms, 2 ** 31 - 1));
  }

  private run(route: Route, request: unknown): void {
    if (route.kind === "unary") {
      route.handle(request, this).then(
        (response) => this.reply(route, response),
        (err: unknown) => this.fail(this.asStatus(err)),
      );
      return;
    }
    /** False once the client is not reading and messages queue up (see events/fanout.ts). */
    const send = (message: unknown): boolean => {
      if (this.done) return false;
      const framed = this.frame(route, message);
      if (!framed) return false;
      this.sendHeaders();
      return this.stream.write(framed);
    };
    route.handle(request, send, this).then(
      () => this.finish(OK_TRAILERS),
      (err: unknown) => this.fail(this.asStatus(err)),
    );
  }

  private reply(route: Route, response: unknown): void {
    if (this.done) return;
    const framed = this.frame(route, response);
    if (!framed) return;
    this.sendHeaders();
    this.stream.write(framed);
    this.finish(OK_TRAILERS);
  }

  /** The message with its prefix, or undefined after failing the call. */
  private frame(route: Route, message: unknown): Uint8Array | undefined {
    let bytes: Uint8Array;
    try {
      bytes = route.encode(message);
    } catch (e) {
      this.fail(new GrpcError(GrpcStatus.INTERNAL, `${this.path}: cannot encode the response: ${e instanceof Error ? e.message : String(e)}`));
      return undefined;
    }
    if (bytes.length > this.options.maxMessage) {
      this.fail(new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `${this.path}: the response (${bytes.length} octets) is larger than the ${this.options.maxMessage} allowed`));
      return undefined;
    }
    return frameMessage(bytes);
  }

  fail(err: GrpcError): void {
    if (this.done) return;
    const fields: [string, string][] = [["grpc-status", String(err.code)], ["grpc-message", percentEncode(err.details)]];
    if (!this.headersSent) {
      // Trailers-only: one HEADERS frame carries the status and ends the stream.
      this.headersSent = true;
      this.done = true;
      this.clearDeadline();
      this.stream.respond(headerBlock([[":status", "200"], ["content-type", "application/grpc"], ...fields]), true);
      return;
    }
    this.finish(headerBlock(fields));
  }

  private finish(trailers: Uint8Array): void {
    if (this.done) return;
    this.done = true;
    this.clearDeadline();
    this.sendHeaders();
    this.stream.end(trailers);
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(RESPONSE_HEADERS);
  }

  private tooLarge(length: number): void {
    this.fail(new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `${this.path}: received message larger than max (${length} vs. ${this.options.maxMessage})`));
    this.chunks = [];
  }

  private checkLength(first: Uint8Array): void {
    const length = ((first[1]! << 24) >>> 0) + (first[2]! << 16) + (first[3]! << 8) + first[4]!;
    if (length > this.options.maxMessage) this.tooLarge(length);
  }

  private asStatus(err: unknown): GrpcError {
    return err instanceof GrpcError ? err : this.options.toStatus(err, this.path);
  }

  private abort(reason: Error): void {
    this.abortReason = reason;
    if (this.controller && !this.controller.signal.aborted) this.controller.abort(reason);
  }

  private clearDeadline(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** `grpc-timeout`: up to 8 digits and a unit (gRPC over HTTP/2). */
export function parseTimeout(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  return Math.ceil(Number(m[1]) * TIMEOUT_UNITS[m[2]!]!);
}

/** `grpc-message`: UTF-8, with octets outside printable ASCII and "%" percent-encoded. */
export function percentEncode(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = "";
  for (const b of Buffer.from(text, "utf8")) {
    out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(b);
  }
  return out;
}
