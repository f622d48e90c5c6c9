// Per-RPC counts by gRPC code and latency histograms: server.ts wraps each
// handler with instrumentRpc() once, when it builds the service table.
import { GrpcStatus as status } from "../protocol/grpc_status.ts";
import { criServiceFullName, type CriServiceName } from "../protocol/proto.ts";
import { toGrpcStatus } from "./status_codes.ts";
import { rpcHandled, rpcSeconds } from "../metrics/crib_metrics.ts";

/** gRPC code names as go-grpc-prometheus writes them ("OK", "NotFound", ...). */
const CODE_NAMES: Record<number, string> = {
  [status.OK]: "OK", [status.CANCELLED]: "Canceled", [status.UNKNOWN]: "Unknown", [status.INVALID_ARGUMENT]: "InvalidArgument",
  [status.DEADLINE_EXCEEDED]: "DeadlineExceeded", [status.NOT_FOUND]: "NotFound", [status.ALREADY_EXISTS]: "AlreadyExists",
  [status.PERMISSION_DENIED]: "PermissionDenied", [status.RESOURCE_EXHAUSTED]: "ResourceExhausted", [status.FAILED_PRECONDITION]: "FailedPrecondition",
  [status.ABORTED]: "Aborted", [status.OUT_OF_RANGE]: "OutOfRange", [status.UNIMPLEMENTED]: "Unimplemented", [status.INTERNAL]: "Internal",
  [status.UNAVAILABLE]: "Unavailable", [status.DATA_LOSS]: "DataLoss", [status.UNAUTHENTICATED]: "Unauthenticated",
};

export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}

type AnyFn = (...args: never[]) => Promise<unknown>;

/** The handler with its completions counted and timed; undefined stays undefined. */
export function instrumentRpc<H extends { kind: "unary" | "stream"; fn: AnyFn }>(serviceName: CriServiceName, method: string, h: H | undefined): H | undefined {
  if (!h) return h;
  const service = criServiceFullName(serviceName); // "runtime.v1.RuntimeService"
  const inner = h.fn;
  const grpcType = h.kind === "unary" ? "unary" : "server_stream";
  const done = (code: number, started: number) => {
    rpcHandled.inc({ grpc_type: grpcType, grpc_service: service, grpc_method: method, grpc_code: grpcCodeName(code) });
    rpcSeconds.observe({ grpc_type: grpcType, grpc_service: service, grpc_method: method }, (performance.now() - started) / 1000);
  };
  const fn = async (...args: never[]) => {
    const started = performance.now();
    try {
      const r = await inner(...args);
      done(status.OK, started);
      return r;
    } catch (e) {
      done(toGrpcStatus(e, method).code, started);
      throw e;
    }
  };
  return { ...h, fn } as H;
}
