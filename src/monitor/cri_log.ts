// The CRI container log format, pure (no I/O): each record is
//
//   <RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n
//
// F closes a line; P is a piece the reader joins with what follows. As containerd does:
// a line with more than 16 KiB of content is cut into 16 KiB P pieces and a last F; a
// trailing "\r\n" counts as the newline; and an unterminated last line at EOF is written
// as P (conmon, which writes whatever each read returned, also leaves it as P).

export const MAX_LINE_BYTES = 16 * 1024;

export type StreamName = "stdout" | "stderr";

const NL = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();

const pad2 = (n: number): string => (n < 10 ? "0" : "") + n;

/**
 * RFC 3339 with nine fraction digits and the zone offset: "Z" at offset 0, else "+hh:mm"
 * (Go's "2006-01-02T15:04:05.000000000Z07:00", what containerd writes).
 * `offsetMinutes` is east of UTC (the negation of Date#getTimezoneOffset()).
 */
export function formatTimestamp(ns: bigint, offsetMinutes = 0): string {
  let sec = ns / 1_000_000_000n;
  let frac = ns % 1_000_000_000n;
  if (frac < 0n) {
    frac += 1_000_000_000n;
    sec -= 1n;
  }
  const local = new Date((Number(sec) + offsetMinutes * 60) * 1000);
  const y = local.getUTCFullYear();
  const year = y >= 0 && y < 10000 ? String(y).padStart(4, "0") : String(y);
  let zone = "Z";
  if (offsetMinutes !== 0) {
    const abs = Math.abs(offsetMinutes);
    zone = `${offsetMinutes < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
  }
  return (
    `${year}-${pad2(local.getUTCMonth() + 1)}-${pad2(local.getUTCDate())}` +
    `T${pad2(local.getUTCHours())}:${pad2(local.getUTCMinutes())}:${pad2(local.getUTCSeconds())}` +
    `.${frac.toString().padStart(9, "0")}${zone}`
  );
}

/** A growable byte buffer for one batch of records. */
class Bytes {
  buf: Uint8Array;
  len = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(Math.max(64, size));
  }
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  put(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  byte(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  take(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Turns one stream's raw bytes into CRI records. Bytes of an unfinished line wait in
 * the encoder (at most MAX_LINE_BYTES of them) until a newline, more than
 * MAX_LINE_BYTES, or end().
 */
export class CriLineEncoder {
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  private headTs = "";
  private headF = new Uint8Array(0);
  private headP = new Uint8Array(0);

  constructor(
    readonly stream: StreamName,
    private readonly maxLine = MAX_LINE_BYTES,
  ) {}

  /** Bytes held back (an unfinished line). */
  get buffered(): number {
    return this.pendingLen;
  }

  /** Records for `chunk`, all stamped with `timestamp` (from formatTimestamp). */
  push(chunk: Uint8Array, timestamp: string): Uint8Array {
    const { headF, headP } = this.heads(timestamp);
    const out = new Bytes(chunk.length + this.pendingLen + 64);
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      if (nl < 0) {
        this.hold(chunk.subarray(start), out, headP);
        break;
      }
      let end = nl;
      if (end > start && chunk[end - 1] === CR) end--;
      else if (end === start && this.pendingLen > 0 && this.lastPendingByte() === CR) this.dropLastPendingByte();
      if (this.pendingLen === 0 && end - start <= this.maxLine) {
        // The common case, a whole short line in this chunk: no copy into pending.
        out.put(headF);
        out.put(chunk.subarray(start, end));
        out.byte(NL);
      } else {
        this.hold(chunk.subarray(start, end), out, headP);
        this.emitPending(out, headF);
      }
      start = nl + 1;
    }
    return out.take();
  }

  /** At EOF: an unterminated last line becomes a P record (as containerd writes it). */
  end(timestamp: string): Uint8Array {
    if (this.pendingLen === 0) return new Uint8Array(0);
    const out = new Bytes(this.pendingLen + 64);
    this.emitPending(out, this.heads(timestamp).headP);
    return out.take();
  }

  // Record headers, re-encoded only when the timestamp changes.
  private heads(timestamp: string): { headF: Uint8Array; headP: Uint8Array } {
    if (timestamp !== this.headTs) {
      this.headTs = timestamp;
      this.headF = encoder.encode(`${timestamp} ${this.stream} F `);
      this.headP = encoder.encode(`${timestamp} ${this.stream} P `);
    }
    return { headF: this.headF, headP: this.headP };
  }

  // Adds bytes of the current line; whenever more than maxLine bytes wait, the first
  // maxLine go out as a P record (the byte after them proves the line goes on).
  private hold(bytes: Uint8Array, out: Bytes, headP: Uint8Array): void {
    let rest = bytes;
    while (this.pendingLen + rest.length > this.maxLine) {
      const take = this.maxLine - this.pendingLen;
      this.pending.push(rest.subarray(0, take));
      this.pendingLen += take;
      this.emitPending(out, headP);
      rest = rest.subarray(take);
    }
    if (rest.length > 0) {
      // Copy: the caller's chunk buffer may be reused after push returns.
      this.pending.push(rest.slice());
      this.pendingLen += rest.length;
    }
  }

  private emitPending(out: Bytes, head: Uint8Array): void {
    out.put(head);
    for (const p of this.pending) out.put(p);
    out.byte(NL);
    this.pending = [];
    this.pendingLen = 0;
  }

  private lastPendingByte(): number | undefined {
    const last = this.pending[this.pending.length - 1];
    return last === undefined ? undefined : last[last.length - 1];
  }

  private dropLastPendingByte(): void {
    const last = this.pending.pop();
    if (last === undefined) return;
    if (last.length > 1) this.pending.push(last.subarray(0, last.length - 1));
    this.pendingLen--;
  }
}

/** One parsed CRI log record (for tests and `crib ctl logs`). */
export interface CriRecord {
  time: string;
  stream: StreamName;
  partial: boolean;
  content: string;
}

/** Parses CRI log text into records; throws on a malformed line. */
export function parseCriLog(text: string): CriRecord[] {
  const records: CriRecord[] = [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(line);
    if (m === null) throw new Error(`not a CRI log line: ${JSON.stringify(line.slice(0, 200))}`);
    records.push({ time: m[1]!, stream: m[2] as StreamName, partial: m[3] === "P", content: m[4]! });
  }
  return records;
}

/** Joins P records with the record that follows, per stream: the lines as written. */
export function joinCriLines(records: CriRecord[], stream: StreamName): { lines: string[]; unterminated?: string } {
  const lines: string[] = [];
  let acc: string | undefined;
  for (const r of records) {
    if (r.stream !== stream) continue;
    acc = (acc ?? "") + r.content;
    if (!r.partial) {
      lines.push(acc);
      acc = undefined;
    }
  }
  return acc === undefined ? { lines } : { lines, unterminated: acc };
}
