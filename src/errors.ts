// Domain errors. Components throw these; only src/cri/ turns them into gRPC
// status codes, so a component never needs to know about gRPC.

export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "unavailable"
  | "permission_denied"
  | "unimplemented"
  | "internal"
  // Kubelets match these two by message prefix on gRPC UNKNOWN (status_codes.ts).
  | "signature_invalid"
  | "registry_unavailable";

export class CribError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = "CribError";
  }
}

export const invalidArgument = (msg: string, cause?: unknown) => new CribError("invalid_argument", msg, { cause });
export const notFound = (msg: string, cause?: unknown) => new CribError("not_found", msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown) => new CribError("already_exists", msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown) => new CribError("failed_precondition", msg, { cause });
export const resourceExhausted = (msg: string, cause?: unknown) => new CribError("resource_exhausted", msg, { cause });
export const deadlineExceeded = (msg: string, cause?: unknown) => new CribError("deadline_exceeded", msg, { cause });
export const unavailable = (msg: string, cause?: unknown) => new CribError("unavailable", msg, { cause });
export const permissionDenied = (msg: string, cause?: unknown) => new CribError("permission_denied", msg, { cause });
export const unimplemented = (msg: string, cause?: unknown) => new CribError("unimplemented", msg, { cause });
export const internal = (msg: string, cause?: unknown) => new CribError("internal", msg, { cause });
/** An image refused by the signature policy; `reason` says which check failed. */
export const signatureInvalid = (reason: string, cause?: unknown) => new CribError("signature_invalid", reason, { cause });
/** A registry (or its token server) that cannot be reached or answers with a server error. */
export const registryUnavailable = (msg: string, cause?: unknown) => new CribError("registry_unavailable", msg, { cause });

/** A message for any thrown value, for logs and error wrapping. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The errno code of a Node/Bun system error ("ENOENT", ...), if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
