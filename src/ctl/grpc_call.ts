// One gRPC call over an HTTP/2 session (the gRPC over HTTP/2 protocol, PROTOCOL-HTTP2.md):
// the request is one length-prefixed message; the answer is messages, then the status in
// the trailers (or, with no message at all, in the headers: a trailers-only response).
import http2 from "node:http2";
import { frameMessage, MESSAGE_PREFIX } from "../grpc/message.ts";
import { GrpcStatus } from "../protocol/grpc_status.ts";

/** The largest message crib ctl accepts (the daemon's limit too). */
export const MAX_MESSAGE = 16 * 1024 * 1024;

/** How a call ended, when not with OK. */
export interface CallFailure {
  code: number;
  details: string;
}

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The gRPC code of an HTTP answer that carries no grpc-status (the spec's table). */
function codeOfHttpStatus(status: number): number {
  switch (status) {
    case 400: return GrpcStatus.INTERNAL;
    case 401: return GrpcStatus.UNAUTHENTICATED;
    case 403: return GrpcStatus.PERMISSION_DENIED;
    case 404: return GrpcStatus.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GrpcStatus.UNAVAILABLE;
    default: return GrpcStatus.UNKNOWN;
  }
}

/** grpc-timeout: at most 8 digits, so large values go in coarser units. */
function timeoutHeader(ms: number): string {
  const m = Math.max(1, Math.ceil(ms));
  return m < 1e8 ? `${m}m` : `${Math.ceil(m / 1000)}S`;
}

function percentDecoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // not valid percent-encoding: show it as it came
  }
}

/** Splits the DATA of a response into gRPC messages (1-byte flag, 4-byte length, body). */
class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** The complete messages this chunk finishes; throws a CallFailure on a bad frame. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    while (this.buffered >= MESSAGE_PREFIX) {
      const head = this.chunks[0]!.length >= MESSAGE_PREFIX ? this.chunks[0]! : this.flatten();
      const compressed = head[0]!;
      const length = head.readUInt32BE(1);
      if (compressed !== 0) throw failure(GrpcStatus.INTERNAL, "the server sent a compressed message, which crib ctl does not accept");
      if (length > MAX_MESSAGE) throw failure(GrpcStatus.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${MAX_MESSAGE})`);
      if (this.buffered < MESSAGE_PREFIX + length) break;
      const all = this.flatten();
      out.push(all.subarray(MESSAGE_PREFIX, MESSAGE_PREFIX + length));
      const rest = all.subarray(MESSAGE_PREFIX + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
    return out;
  }

  get pending(): number {
    return this.buffered;
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0]!;
  }
}

function failure(code: number, details: string): CallFailure {
  return { code, details };
}

export function isCallFailure(e: unknown): e is CallFailure {
  return typeof e === "object" && e !== null && typeof (e as CallFailure).code === "number" && typeof (e as CallFailure).details === "string";
}


/**
 * Runs one call: resolves once the server ends it with OK, having passed each message
 * to onMessage; rejects with a CallFailure otherwise. A signal that aborts resolves
 * (the caller asked for the end), after cancelling the stream.
 */
export function grpcCall(session: http2.ClientHttp2Session, path: string, body: Uint8Array, onMessage: (m: Buffer) => void, opts: CallOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      ":authority": "localhost",
      ":scheme": "http",
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (opts.timeoutMs !== undefined) headers["grpc-timeout"] = timeoutHeader(opts.timeoutMs);
    let settled = false;
    let status: CallFailure | undefined;
    let httpStatus = 0;
    const framer = new MessageFramer();
    let stream: http2.ClientHttp2Stream;
    const finish = (f: CallFailure | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      if (f && f.code !== GrpcStatus.OK) reject(f);
      else resolve();
    };
    const onAbort = (): void => finish(undefined);
    const timer = opts.timeoutMs === undefined ? undefined
      : setTimeout(() => finish(failure(GrpcStatus.DEADLINE_EXCEEDED, `Deadline exceeded after ${(opts.timeoutMs! / 1000).toFixed(3)}s`)), opts.timeoutMs);
    /** grpc-status and grpc-message from trailers, or from headers in a trailers-only answer. */
    const readStatus = (h: http2.IncomingHttpHeaders): void => {
      const code = h["grpc-status"];
      if (code === undefined) return;
      const message = h["grpc-message"];
      status = failure(Number(code), percentDecoded(typeof message === "string" ? message : ""));
    };
    try {
      stream = session.request(headers);
    } catch (e) {
      clearTimeout(timer);
      reject(failure(GrpcStatus.UNAVAILABLE, e instanceof Error ? e.message : String(e)));
      return;
    }
    if (opts.signal?.aborted) return finish(undefined);
    opts.signal?.addEventListener("abort", onAbort);
    stream.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      readStatus(h);
      if (status === undefined && httpStatus === 200 && !String(h["content-type"] ?? "").startsWith("application/grpc"))
        finish(failure(GrpcStatus.UNKNOWN, `the server answered with content-type ${String(h["content-type"])}, not application/grpc`));
    });
    stream.on("trailers", (h) => readStatus(h));
    stream.on("data", (chunk: Buffer) => {
      if (settled) return;
      try {
        for (const m of framer.push(chunk)) onMessage(m);
      } catch (e) {
        finish(isCallFailure(e) ? e : failure(GrpcStatus.INTERNAL, `bad response message: ${e instanceof Error ? e.message : String(e)}`));
      }
    });
    stream.on("error", (e: Error & { code?: string }) => {
      finish(failure(GrpcStatus.UNAVAILABLE, e.message));
    });
    stream.on("close", () => {
      if (settled) return;
      if (status !== undefined) {
        if (status.code === GrpcStatus.OK && framer.pending > 0) return finish(failure(GrpcStatus.INTERNAL, "the response ended inside a message"));
        return finish(status);
      }
      if (httpStatus !== 0 && httpStatus !== 200) return finish(failure(codeOfHttpStatus(httpStatus), `the server answered HTTP ${httpStatus} without a gRPC status`));
      const rst = stream.rstCode;
      if (rst === http2.constants.NGHTTP2_REFUSED_STREAM) return finish(failure(GrpcStatus.UNAVAILABLE, "the server refused the stream"));
      if (rst === http2.constants.NGHTTP2_CANCEL) return finish(failure(GrpcStatus.CANCELLED, "the server cancelled the call"));
      if (rst !== undefined && rst !== http2.constants.NGHTTP2_NO_ERROR) return finish(failure(GrpcStatus.INTERNAL, `Received RST_STREAM with code ${rst}`));
      finish(failure(GrpcStatus.UNAVAILABLE, "the connection closed before the call ended"));
    });
    stream.end(frameMessage(body));
  });
}
