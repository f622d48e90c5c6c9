// What the error stream of an exec or attach carries: a metav1.Status (JSON) in the
// v4/v5 channel protocols, plain text in v2/v3. kubectl reads a non-zero exit code
// from the NonZeroExitCode reason and its ExitCode cause.

export interface StatusCause {
  /** metav1.StatusCause.Type is serialized as "reason". */
  reason?: string;
  message?: string;
}

export interface Status {
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { causes: StatusCause[] };
  code?: number;
}

/** How a command (or an attach) ended. */
export type CommandOutcome = { exitCode: number } | { error: string };

export function statusFor(outcome: CommandOutcome): Status {
  if ("error" in outcome) {
    return {
      metadata: {},
      status: "Failure",
      message: outcome.error,
      reason: "InternalError",
      details: { causes: [{ message: outcome.error }] },
      code: 500,
    };
  }
  if (outcome.exitCode === 0) return { metadata: {}, status: "Success" };
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: exit status ${outcome.exitCode}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(outcome.exitCode) }] },
  };
}

/** The v2/v3 error stream: nothing on success, else the message. */
export function legacyErrorText(outcome: CommandOutcome): string {
  if ("error" in outcome) return outcome.error;
  return outcome.exitCode === 0 ? "" : `command terminated with non-zero exit code: exit status ${outcome.exitCode}`;
}

/** The exit code a client reports for a status (kubectl's rules): 0, the cause's code, or 1. */
export function exitCodeOf(st: Status): number {
  if (st.status === "Success") return 0;
  if (st.reason === "NonZeroExitCode") {
    const cause = st.details?.causes.find((c) => c.reason === "ExitCode");
    const n = Number(cause?.message);
    if (Number.isInteger(n) && n >= 0) return n;
  }
  return 1;
}

export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * Decodes the resize stream: a sequence of JSON objects {"Width":w,"Height":h} with
 * nothing (or whitespace) between them, as Go's json.Encoder writes them.
 */
export class ResizeDecoder {
  private text = "";

  constructor(private readonly maxPending = 4096) {}

  push(chunk: Uint8Array | string): TerminalSize[] {
    this.text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    const out: TerminalSize[] = [];
    for (;;) {
      const start = this.text.search(/\S/);
      if (start < 0) {
        this.text = "";
        break;
      }
      if (this.text[start] !== "{") throw new Error("the resize stream carries something other than JSON objects");
      const end = objectEnd(this.text, start);
      if (end < 0) break;
      const raw = this.text.slice(start, end + 1);
      this.text = this.text.slice(end + 1);
      const v = JSON.parse(raw) as { Width?: unknown; Height?: unknown };
      const width = Number(v.Width);
      const height = Number(v.Height);
      if (Number.isInteger(width) && Number.isInteger(height) && width >= 0 && height >= 0) out.push({ width, height });
    }
    if (this.text.length > this.maxPending) throw new Error("a resize message is too long");
    return out;
  }
}

/** Index of the brace closing the object that opens at `start`, or -1 if incomplete. */
function objectEnd(s: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}
