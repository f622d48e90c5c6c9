// The one place where domain errors become gRPC status codes.
import { status } from "@grpc/grpc-js";
import { CribError, type ErrorKind } from "../errors.ts";

const CODES: Record<ErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  unavailable: status.UNAVAILABLE,
  permission_denied: status.PERMISSION_DENIED,
  unimplemented: status.UNIMPLEMENTED,
  internal: status.INTERNAL,
};

export interface GrpcFailure { code: status; details: string }

export function toGrpcStatus(err: unknown, method: string): GrpcFailure {
  if (err instanceof CribError) return { code: CODES[err.kind], details: err.message };
  const msg = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `${method}: internal error: ${msg}` };
}
