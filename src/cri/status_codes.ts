// The one place where domain errors become gRPC status codes.
import { GrpcStatus as status } from "../protocol/grpc_status.ts";
import { CribError, type ErrorKind } from "../errors.ts";

const CODES: Record<ErrorKind, number> = {
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
  signature_invalid: status.UNKNOWN,
  registry_unavailable: status.UNKNOWN,
};

/**
 * Kubelets strip the gRPC status only from UNKNOWN errors and match the rest
 * against their image errors (ErrSignatureValidationFailed,
 * ErrRegistryUnavailable), which then reach `kubectl describe` as the reason.
 */
const PREFIXES: Partial<Record<ErrorKind, string>> = {
  signature_invalid: "SignatureValidationFailed: ",
  registry_unavailable: "RegistryUnavailable: ",
};

export interface GrpcFailure { code: number; details: string }

/**
 * Details travel in an HTTP/2 trailer: a message that quotes a huge request
 * field (a 70 kB name) would not fit, and the client would see a bare reset.
 */
export const MAX_DETAILS = 4096;

function bounded(details: string): string {
  return details.length <= MAX_DETAILS ? details : `${details.slice(0, MAX_DETAILS - 40)}... (${details.length - MAX_DETAILS + 40} more characters)`;
}

/** A full disk or quota, from a file write (ENOSPC, EDQUOT) or from SQLite (SQLITE_FULL). */
function diskFull(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL";
}

export function toGrpcStatus(err: unknown, method: string): GrpcFailure {
  if (err instanceof CribError) return { code: CODES[err.kind], details: bounded(`${PREFIXES[err.kind] ?? ""}${err.message}`) };
  const msg = err instanceof Error ? err.message : String(err);
  if (diskFull(err)) return { code: status.RESOURCE_EXHAUSTED, details: bounded(`${method}: disk full: ${msg}`) };
  return { code: status.INTERNAL, details: bounded(`${method}: internal error: ${msg}`) };
}
