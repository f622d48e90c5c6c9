// The CRI gRPC server: wires each RPC of RuntimeService, ImageService and crib's own
// service to its handler; RPCs without one answer UNIMPLEMENTED naming the RPC.
import type { CriContext } from "./context.ts";
import { log } from "../log/logger.ts";
import { instrumentRpc } from "./rpc_metrics.ts";
import { codecFor, criMethods, type CriServiceName } from "../protocol/proto.ts";
import { cribHandlers, imageHandlers, runtimeHandlers } from "./handlers.ts";
import type { CallContext } from "./rpc.ts";
import { toGrpcStatus } from "./status_codes.ts";
import { GrpcError, GrpcServer, type CallInfo, type Route } from "../grpc/server.ts";
import { GrpcStatus, grpcStatusName } from "../protocol/grpc_status.ts";

const rpcLog = log.with({ component: "cri" });

/** The kubelet sends and expects messages up to 16 MiB (ListContainers on big nodes). */
const MAX_MESSAGE = 16 * 1024 * 1024;
/** How long a stopping daemon lets calls in flight finish. */
export const SHUTDOWN_GRACE_MS = 5000;

// The typed tables in handlers.ts, seen without their per-RPC types.
type AnyHandler =
  | { kind: "unary"; fn: (d: CriContext, req: unknown, ctx: CallContext) => Promise<unknown> }
  | { kind: "stream"; fn: (d: CriContext, req: unknown, send: (msg: unknown) => boolean, ctx: CallContext) => Promise<void> };
type HandlerTable = Record<string, AnyHandler | undefined>;

function addRoutes(routes: Map<string, Route>, d: CriContext, service: CriServiceName, table: HandlerTable): void {
  for (const m of criMethods(service)) {
    const method = m.name;
    const request = codecFor(m.requestType);
    const response = codecFor(m.responseType);
    const codec = { decode: request.decode, encode: (v: unknown) => response.encode(v as object) };
    const handler = instrumentRpc(service, method, table[method]); // counted and timed for /metrics
    if (!handler) {
      const details = `${service}/${method} is not implemented by crib yet`;
      const refuse = () => Promise.reject(new GrpcError(GrpcStatus.UNIMPLEMENTED, details));
      routes.set(m.path, m.responseStream ? { kind: "stream", ...codec, handle: refuse } : { kind: "unary", ...codec, handle: refuse });
      continue;
    }
    const context = (call: CallInfo): CallContext => ({
      method,
      get signal() {
        return call.signal;
      },
    });
    const logged = <T>(p: Promise<T>, started: number): Promise<T> =>
      p.then(
        (r) => {
          rpcLog.debug("rpc", { method, ms: elapsed(started) });
          return r;
        },
        (err: unknown) => {
          const s = toGrpcStatus(err, method);
          const level = s.code === GrpcStatus.INTERNAL ? "error" : "debug";
          rpcLog[level]("rpc failed", { method, code: grpcStatusName(s.code), error: s.details, ms: elapsed(started) });
          throw new GrpcError(s.code, s.details);
        },
      );
    if (handler.kind === "unary") {
      const fn = handler.fn;
      routes.set(m.path, { kind: "unary", ...codec, handle: (req, call) => logged(fn(d, req, context(call)), performance.now()) });
    } else {
      const fn = handler.fn;
      routes.set(m.path, { kind: "stream", ...codec, handle: (req, send, call) => logged(fn(d, req, send, context(call)), performance.now()) });
    }
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

export function createCriServer(d: CriContext): GrpcServer {
  const routes = new Map<string, Route>();
  addRoutes(routes, d, "RuntimeService", runtimeHandlers as unknown as HandlerTable);
  addRoutes(routes, d, "ImageService", imageHandlers as unknown as HandlerTable);
  addRoutes(routes, d, "Crib", cribHandlers as unknown as HandlerTable);
  return new GrpcServer({
    routes,
    maxMessage: MAX_MESSAGE,
    toStatus: (err, path) => {
      const s = toGrpcStatus(err, path);
      return new GrpcError(s.code, s.details);
    },
    onProtocolError: (message) => rpcLog.debug("HTTP/2 protocol error from a client", { error: message }),
  });
}
