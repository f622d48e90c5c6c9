// The CRI gRPC server: wires each RPC of RuntimeService and ImageService to its
// handler; RPCs without one answer UNIMPLEMENTED naming the RPC.
import type { EventEmitter } from "node:events";
import { createServer } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { rewritingStream } from "../h2/rewriting_stream.ts";
import type { CriContext } from "./context.ts";
import { log } from "../log/logger.ts";
import { instrumentRpc } from "./rpc_metrics.ts";
import { criMethods, grpcServiceDefinition, MalformedRequest, type CriServiceName } from "../protocol/proto.ts";
import { cribHandlers, imageHandlers, runtimeHandlers } from "./handlers.ts";
import type { CallContext } from "./rpc.ts";
import { toGrpcStatus } from "./status_codes.ts";

const rpcLog = log.with({ component: "cri" });

// The typed tables in handlers.ts, seen without their per-RPC types.
type AnyHandler =
  | { kind: "unary"; fn: (d: CriContext, req: unknown, ctx: CallContext) => Promise<unknown> }
  | { kind: "stream"; fn: (d: CriContext, req: unknown, send: (msg: unknown) => void, ctx: CallContext) => Promise<void> };
type HandlerTable = Record<string, AnyHandler | undefined>;

function serviceImpl(d: CriContext, service: CriServiceName, table: HandlerTable): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of criMethods(service)) {
    const method = m.name;
    const handler = instrumentRpc(service, method, table[method]); // counted and timed for /metrics
    const fail = (err: unknown, started: number) => {
      const s = toGrpcStatus(err, method);
      const level = s.code === grpc.status.INTERNAL ? "error" : "debug";
      rpcLog[level]("rpc failed", { method, code: grpc.status[s.code], error: s.details, ms: elapsed(started) });
      return { code: s.code, details: s.details };
    };
    if (!handler) {
      const details = `${service}/${method} is not implemented by crib yet`;
      impl[method] = m.responseStream
        ? (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit("error", { code: grpc.status.UNIMPLEMENTED, details })
        : (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED, details });
      continue;
    }
    const malformed = (req: unknown) =>
      req instanceof MalformedRequest ? { code: grpc.status.INVALID_ARGUMENT, details: `${method}: malformed request: ${req.reason}` } : undefined;
    if (handler.kind === "unary") {
      impl[method] = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const bad = malformed(call.request);
        if (bad) return cb(bad);
        const started = performance.now();
        const ctx = contextFor(method, call);
        handler.fn(d, call.request, ctx).then(
          (res) => {
            rpcLog.debug("rpc", { method, ms: elapsed(started) });
            cb(null, res);
          },
          (err: unknown) => cb(fail(err, started)),
        );
      };
    } else {
      impl[method] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const bad = malformed(call.request);
        if (bad) return call.emit("error", bad);
        const started = performance.now();
        const ctx = contextFor(method, call);
        const send = (msg: unknown) => call.write(msg);
        handler.fn(d, call.request, send, ctx).then(
          () => call.end(),
          (err: unknown) => call.emit("error", fail(err, started)),
        );
      };
    }
  }
  return impl;
}

function contextFor(method: string, call: EventEmitter): CallContext {
  const ac = new AbortController();
  call.on("cancelled", () => ac.abort(new Error(`${method} cancelled by the client`)));
  return { method, signal: ac.signal };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

export function createCriServer(d: CriContext): grpc.Server {
  // The kubelet sends up to 16 MiB messages (e.g. ListContainers on big nodes).
  const server = new grpc.Server({
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
    "grpc.max_send_message_length": 16 * 1024 * 1024,
  });
  server.addService(grpcServiceDefinition("RuntimeService", "server"), serviceImpl(d, "RuntimeService", runtimeHandlers as unknown as HandlerTable));
  server.addService(grpcServiceDefinition("ImageService", "server"), serviceImpl(d, "ImageService", imageHandlers as unknown as HandlerTable));
  server.addService(grpcServiceDefinition("Crib", "server"), serviceImpl(d, "Crib", cribHandlers as unknown as HandlerTable));
  return server;
}

/** The CRI socket: accepts connections and hands them to the gRPC server. */
export interface UnixListener {
  /** Stop accepting connections (the gRPC server's shutdown ends the open ones). */
  close(): Promise<void>;
}

/**
 * Listen on a unix socket path; resolves once listening. Connections reach the
 * gRPC server through an HTTP/2 `:authority` rewriter (src/h2/), so clients that
 * send the socket path or an empty authority are served like the rest.
 */
export function listenUnix(server: grpc.Server, socketPath: string): Promise<UnixListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = createServer((socket) => injector.injectConnection(rewritingStream(socket)));
  return new Promise((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(socketPath, () => {
      listener.off("error", reject);
      listener.on("error", (err) => rpcLog.error("CRI socket error", { error: err.message }));
      resolve({ close: () => new Promise<void>((done) => listener.close(() => done())) });
    });
  });
}
