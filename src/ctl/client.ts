// A typed CRI client over a unix socket, for `crib ctl` and the tests.
import { existsSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../protocol/proto.ts";
import { UsageError } from "../cli/args.ts";
import type { CribMethods, ImageServiceMethods, Out, RuntimeServiceMethods } from "../protocol/types.ts";

type Methods = { RuntimeService: RuntimeServiceMethods; ImageService: ImageServiceMethods; Crib: CribMethods };
type Svc = keyof Methods;

/** Accepts `unix:///path`, `unix:/path` or a plain path. */
export function socketAddress(endpoint: string): string {
  if (endpoint.startsWith("unix://")) return `unix:${endpoint.slice("unix://".length)}`;
  if (endpoint.startsWith("unix:")) return endpoint;
  if (endpoint.startsWith("/")) return `unix:${endpoint}`;
  throw new UsageError(`unsupported endpoint "${endpoint}": use unix:///path/to/crib.sock`);
}

/**
 * grpc-js says "No connection established. Last error: Error: connect ENOENT ...
 * Resolution note: " when there is no daemon: say that in words a person acts on.
 */
function unavailableDetails(details: string, socket: string): string {
  // UNAVAILABLE from the daemon itself (a registry it cannot reach) is passed on as it is.
  if (!details.startsWith("No connection established")) return details;
  if (!existsSync(socket)) return `no crib daemon at ${socket}: the socket does not exist (is crib serve running? -r ENDPOINT or --config FILE picks another)`;
  if (/ECONNREFUSED/.test(details)) return `no crib daemon at ${socket}: nothing accepts connections on the socket (is crib serve running?)`;
  return details.replace(/\s*Resolution note:\s*$/, "");
}

export class CriError extends Error {
  constructor(readonly code: grpc.status, readonly details: string, method: string) {
    super(`${method}: ${grpc.status[code] ?? code}: ${details}`);
  }
}

export class CriClient {
  private readonly clients: Record<Svc, grpc.Client>;
  private readonly socket: string;

  constructor(endpoint: string, private readonly timeoutMs = 10_000) {
    const address = socketAddress(endpoint);
    this.socket = address.slice("unix:".length);
    const opts = { "grpc.max_receive_message_length": 16 * 1024 * 1024 };
    const make = (svc: Svc) => {
      const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(svc), svc);
      return new Ctor(address, grpc.credentials.createInsecure(), opts);
    };
    this.clients = { RuntimeService: make("RuntimeService"), ImageService: make("ImageService"), Crib: make("Crib") };
  }

  call<S extends Svc, M extends keyof Methods[S] & string>(
    svc: S,
    method: M,
    req: Out<(Methods[S][M] & { req: unknown })["req"]>,
    opts: { timeoutMs?: number } = {},
  ): Promise<(Methods[S][M] & { res: unknown })["res"]> {
    const client = this.clients[svc] as unknown as Record<string, (req: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;
    const fn = client[method];
    if (!fn) throw new Error(`${svc} has no method ${method}`);
    const deadline = Date.now() + (opts.timeoutMs ?? this.timeoutMs);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err) reject(this.error(err, method));
        else resolve(res as (Methods[S][M] & { res: unknown })["res"]);
      });
    });
  }

  /** A server-streaming call: every message, collected until the stream ends. */
  stream<S extends Svc, M extends keyof Methods[S] & string>(
    svc: S,
    method: M,
    req: Out<(Methods[S][M] & { req: unknown })["req"]>,
    onMessage: (msg: (Methods[S][M] & { res: unknown })["res"]) => void,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    const client = this.clients[svc] as unknown as Record<string, (req: unknown, md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<unknown>>;
    const fn = client[method];
    if (!fn) throw new Error(`${svc} has no method ${method}`);
    const callOpts: grpc.CallOptions = opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    return new Promise((resolve, reject) => {
      const call = fn.call(client, req, new grpc.Metadata(), callOpts);
      opts.signal?.addEventListener("abort", () => call.cancel());
      call.on("data", (m: unknown) => onMessage(m as (Methods[S][M] & { res: unknown })["res"]));
      call.on("error", (err: grpc.ServiceError) => {
        if (err.code === grpc.status.CANCELLED && opts.signal?.aborted) resolve();
        else reject(this.error(err, method));
      });
      call.on("end", () => resolve());
    });
  }

  private error(err: grpc.ServiceError, method: string): CriError {
    const details = err.code === grpc.status.UNAVAILABLE ? unavailableDetails(err.details, this.socket) : err.details;
    return new CriError(err.code, details, method);
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}
