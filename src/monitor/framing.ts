// The monitor socket's framing, both ways: one JSON message a line; a message that
// says `binary: N` is followed by N raw bytes that belong to it (an ExecSync's output,
// attach output, stdin for a container), so bytes never travel as base64 in JSON.

const NEWLINE = 0x0a;
const NO_BYTES = Buffer.alloc(0);

/** A line longer than the reader allows. */
export class OversizedLine extends Error {}

/** Splits what a socket delivers into messages and the bytes that follow them. */
export class FrameReader<T> {
  // Pieces of the current line: only new data is searched for the newline, so a long
  // line costs linear time; lines are decoded once whole (no split UTF-8).
  private parts: Buffer[] = [];
  private partBytes = 0;
  private raw: { msg: T; need: number; have: number; got: Buffer[] } | undefined;

  constructor(
    /** The message of a line, or undefined to skip it (the parser reports its own errors). */
    private readonly parse: (line: string) => T | undefined,
    /** How many raw bytes follow `msg` (0 for none). */
    private readonly bytesAfter: (msg: T) => number,
    private readonly onMessage: (msg: T, bytes: Buffer) => void,
    private readonly maxLineBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Throws OversizedLine when a line grows past the limit. */
  feed(chunk: Uint8Array): void {
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    while (start < data.length) {
      if (this.raw !== undefined) {
        const r = this.raw;
        const take = Math.min(r.need - r.have, data.length - start);
        r.got.push(data.subarray(start, start + take));
        r.have += take;
        start += take;
        if (r.have === r.need) {
          this.raw = undefined;
          this.onMessage(r.msg, Buffer.concat(r.got, r.need));
        }
        continue;
      }
      const nl = data.indexOf(NEWLINE, start);
      if (nl < 0) {
        this.parts.push(data.subarray(start));
        this.partBytes += data.length - start;
        if (this.partBytes > this.maxLineBytes) throw new OversizedLine(`a line of more than ${this.maxLineBytes} bytes`);
        return;
      }
      this.parts.push(data.subarray(start, nl));
      const line = (this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)).toString("utf8");
      this.parts = [];
      this.partBytes = 0;
      start = nl + 1;
      if (line.trim() === "") continue;
      const msg = this.parse(line);
      if (msg === undefined) continue;
      const need = this.bytesAfter(msg);
      if (need > 0) this.raw = { msg, need, have: 0, got: [] };
      else this.onMessage(msg, NO_BYTES);
    }
  }
}
