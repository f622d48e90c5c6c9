// A typed CRI client over a unix socket, for `crib ctl` and the tests: gRPC over one
// HTTP/2 connection (node:http2), the messages encoded by the generated codecs.
import { existsSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { codecFor, criMethods, type CriMethod } from "../protocol/proto.ts";
import { GrpcStatus, grpcStatusName } from "../protocol/grpc_status.ts";
import { UsageError } from "../cli/args.ts";
import type { CribMethods, ImageServiceMethods, Out, RuntimeServiceMethods } from "../protocol/types.ts";
import { grpcCall, isCallFailure, type CallFailure } from "./grpc_call.ts";

type Methods = { RuntimeService: RuntimeServiceMethods; ImageService: ImageServiceMethods; Crib: CribMethods };
type Svc = keyof Methods;

/** Accepts `unix:///path`, `unix:/path` or a plain path. */
export function socketAddress(endpoint: string): string {
  if (endpoint.startsWith("unix://")) return `unix:${endpoint.slice("unix://".length)}`;
  if (endpoint.startsWith("unix:")) return endpoint;
  if (endpoint.startsWith("/")) return `unix:${endpoint}`;
  throw new UsageError(`unsupported endpoint "${endpoint}": use unix:///path/to/crib.sock`);
}

/** Why connecting failed, in words a person acts on. */
function connectDetails(err: Error & { code?: string }, socket: string): string {
  if (err.code === "ENOENT" || !existsSync(socket)) return `no crib daemon at ${socket}: the socket does not exist (is crib serve running? -r ENDPOINT or --config FILE picks another)`;
  if (err.code === "ECONNREFUSED") return `no crib daemon at ${socket}: nothing accepts connections on the socket (is crib serve running?)`;
  return `cannot connect to ${socket}: ${err.message}`;
}

export class CriError extends Error {
  constructor(readonly code: number, readonly details: string, method: string) {
    super(`${method}: ${grpcStatusName(code)}: ${details}`);
  }
}

type Req<S extends Svc, M extends keyof Methods[S]> = Out<(Methods[S][M] & { req: unknown })["req"]>;
type Res<S extends Svc, M extends keyof Methods[S]> = (Methods[S][M] & { res: unknown })["res"];

export class CriClient {
  private readonly socket: string;
  private readonly methods = new Map<string, CriMethod>();
  private session: http2.ClientHttp2Session | undefined;
  /** Set when the connection failed: every call on it fails with this. */
  private connectError: CallFailure | undefined;

  constructor(endpoint: string, private readonly timeoutMs = 10_000) {
    this.socket = socketAddress(endpoint).slice("unix:".length);
    for (const svc of ["RuntimeService", "ImageService", "Crib"] as const) for (const m of criMethods(svc)) this.methods.set(`${svc}/${m.name}`, m);
  }

  call<S extends Svc, M extends keyof Methods[S] & string>(svc: S, method: M, req: Req<S, M>, opts: { timeoutMs?: number } = {}): Promise<Res<S, M>> {
    let res: Res<S, M> | undefined;
    let count = 0;
    const done = this.run(svc, method, req as object, (m) => {
      res = m as Res<S, M>;
      count++;
    }, { timeoutMs: opts.timeoutMs ?? this.timeoutMs });
    return done.then(() => {
      if (count !== 1) throw new CriError(GrpcStatus.INTERNAL, count === 0 ? "the server sent no response message" : `the server sent ${count} response messages to a unary call`, method);
      return res as Res<S, M>;
    });
  }

  /** A server-streaming call: every message, until the stream ends (or the signal aborts it). */
  stream<S extends Svc, M extends keyof Methods[S] & string>(
    svc: S,
    method: M,
    req: Req<S, M>,
    onMessage: (msg: Res<S, M>) => void,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    return this.run(svc, method, req as object, (m) => onMessage(m as Res<S, M>), opts);
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private async run(svc: Svc, method: string, req: object, onMessage: (m: unknown) => void, opts: { timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
    const m = this.methods.get(`${svc}/${method}`);
    if (!m) throw new Error(`${svc} has no method ${method}`);
    const reqCodec = codecFor(m.requestType);
    const resCodec = codecFor(m.responseType);
    try {
      const session = this.connected();
      await grpcCall(session, m.path, reqCodec.encode(req), (b) => {
        let msg: unknown;
        try {
          msg = resCodec.decode(b);
        } catch (e) {
          throw { code: GrpcStatus.INTERNAL, details: `the response did not decode as ${m.responseType}: ${e instanceof Error ? e.message : String(e)}` } satisfies CallFailure;
        }
        onMessage(msg);
      }, opts);
    } catch (e) {
      if (!isCallFailure(e)) throw e;
      // A stream error right as the connection failed: report the connection's reason.
      const f = this.connectError ?? e;
      throw new CriError(f.code, f.details, method);
    }
  }

  /** The HTTP/2 session, connecting (again, after the daemon went away) if needed. */
  private connected(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    this.connectError = undefined;
    const session = http2.connect("http://localhost", { createConnection: () => net.connect(this.socket) });
    session.on("error", (err: Error & { code?: string }) => {
      if (!session.connecting && this.connectError === undefined && err.code !== "ENOENT" && err.code !== "ECONNREFUSED") return;
      this.connectError = { code: GrpcStatus.UNAVAILABLE, details: connectDetails(err, this.socket) };
    });
    session.on("close", () => {
      if (this.session === session) this.session = undefined;
    });
    session.on("goaway", () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }
}
