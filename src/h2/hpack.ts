// HPACK (RFC 7541): a complete decoder, which mirrors the client's dynamic table,
// and an encoder that writes every field as a literal without indexing, so the
// client's decoder table never holds anything of ours (nothing to keep in step).
//
// Names and values are kept as latin1 strings: one char per octet, so any octets
// a client sends round-trip unchanged.
import { huffmanDecode, HuffmanError } from "./huffman.ts";

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed" (a sensitive value): forwarded the same way. */
  sensitive: boolean;
}

/** RFC 7541 Appendix A: index 1..61. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"],
  [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"],
  [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""],
  ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""],
  ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""],
  ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""],
  ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""],
  ["www-authenticate", ""],
];

/** Static index of each name (its first entry), for the encoder. */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

/** Per-entry overhead in the table size (RFC 7541 4.1). */
const ENTRY_OVERHEAD = 32;
/** Largest integer accepted: far above any index or length a 16 MiB block can hold. */
const MAX_INTEGER = 2 ** 28;
/** The last continuation octet's shift an integer up to MAX_INTEGER can need. */
const MAX_INTEGER_SHIFT = 28;
/**
 * Largest table size update accepted. The peer's own limit (its SETTINGS) is
 * enforced by the decoder the updates are forwarded to; this only bounds memory.
 */
const MAX_TABLE_SIZE = 1 << 20;

export class HpackError extends Error {}

/** The decoded header block: its fields, and the table size updates it began with. */
export interface DecodedBlock {
  fields: HeaderField[];
  sizeUpdates: number[];
}

export class HpackDecoder {
  /** Newest first, as HPACK indexes them (62 = newest). */
  private entries: [string, string][] = [];
  private size = 0;
  /** Every encoder starts at 4096 (RFC 7540 6.5.2) and changes it only by size updates. */
  private maxSize = 4096;

  /** The dynamic table, newest first, and its size in RFC 7541 4.1 terms (for tests and logs). */
  get table(): { entries: readonly (readonly [string, string])[]; size: number; maxSize: number } {
    return { entries: this.entries.map(([n, v]) => [n, v] as const), size: this.size, maxSize: this.maxSize };
  }

  decode(block: Uint8Array): DecodedBlock {
    const r = new Reader(block);
    const fields: HeaderField[] = [];
    const sizeUpdates: number[] = [];
    while (!r.done()) {
      const b = r.peek();
      if (b & 0x80) {
        const [name, value] = this.lookup(r.integer(7));
        fields.push({ name, value, sensitive: false });
      } else if (b & 0x40) {
        const field = this.literal(r, 6, false);
        this.insert(field.name, field.value);
        fields.push(field);
      } else if (b & 0x20) {
        if (fields.length > 0) throw new HpackError("dynamic table size update after a header field");
        const size = r.integer(5);
        if (size > MAX_TABLE_SIZE) throw new HpackError(`dynamic table size update to ${size} is too large`);
        this.maxSize = size;
        this.evict();
        sizeUpdates.push(size);
      } else {
        fields.push(this.literal(r, 4, (b & 0x10) !== 0));
      }
    }
    return { fields, sizeUpdates };
  }

  private literal(r: Reader, prefix: number, sensitive: boolean): HeaderField {
    const index = r.integer(prefix);
    const name = index === 0 ? r.string() : this.lookup(index)[0];
    return { name, value: r.string(), sensitive };
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("header index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (!entry) throw new HpackError(`header index ${index} is outside the table`);
    return entry;
  }

  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    this.entries.unshift([name, value]);
    this.size += entrySize;
    this.evict(); // an entry larger than the table empties it (RFC 7541 4.4)
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const [name, value] = this.entries.pop()!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

class Reader {
  private pos = 0;
  private readonly buf: Buffer;
  constructor(block: Uint8Array) {
    // One Buffer view for the block, so strings are cut from it without a view each.
    this.buf = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  }

  done(): boolean {
    return this.pos >= this.buf.length;
  }

  peek(): number {
    return this.buf[this.pos]!;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new HpackError("header block ends inside a field");
    return this.buf[this.pos++]!;
  }

  /** RFC 7541 5.1: an N-bit prefix integer. */
  integer(prefix: number): number {
    const max = (1 << prefix) - 1;
    let value = this.byte() & max;
    if (value < max) return value;
    // MAX_INTEGER fits in the first few continuation octets. Without a bound on their
    // count, zero-valued ones (0x80 ...) would push 2 ** shift to Infinity and the
    // value to NaN, which passes every later check and never ends the block.
    for (let shift = 0; shift <= MAX_INTEGER_SHIFT; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError("integer too large");
      if ((b & 0x80) === 0) return value;
    }
    throw new HpackError("integer has too many octets");
  }

  /** RFC 7541 5.2: a string literal, Huffman-coded or raw. */
  string(): string {
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.integer(7);
    if (this.pos + length > this.buf.length) throw new HpackError("header block ends inside a string");
    const start = this.pos;
    this.pos += length;
    if (!huffman) return this.buf.toString("latin1", start, this.pos);
    let octets: Uint8Array;
    try {
      octets = huffmanDecode(this.buf.subarray(start, this.pos));
    } catch (e) {
      throw new HpackError(e instanceof HuffmanError ? e.message : String(e));
    }
    return Buffer.from(octets.buffer, octets.byteOffset, octets.byteLength).toString("latin1");
  }
}

/**
 * Encode fields as literals without indexing (never indexed for sensitive ones),
 * with the static table's index for a known name; `sizeUpdates` come first.
 */
export function encodeLiterals(fields: readonly HeaderField[], sizeUpdates: readonly number[] = []): Uint8Array {
  const out: number[] = [];
  for (const size of sizeUpdates) writeInteger(out, 0x20, 5, size);
  for (const f of fields) {
    const index = STATIC_NAME_INDEX.get(f.name) ?? 0;
    writeInteger(out, f.sensitive ? 0x10 : 0x00, 4, index);
    if (index === 0) writeString(out, f.name);
    writeString(out, f.value);
  }
  return Uint8Array.from(out);
}

function writeInteger(out: number[], flags: number, prefix: number, value: number): void {
  const max = (1 << prefix) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function writeString(out: number[], s: string): void {
  writeInteger(out, 0x00, 7, s.length); // raw octets, no Huffman
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}
