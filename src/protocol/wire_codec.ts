// One generic protobuf codec that walks the generated field tables (messages.ts).
// Decoded objects are shaped as crib's handlers have always seen them (protobuf.js's
// toObject with defaults): snake_case keys, every field present with its default,
// unset sub-messages null, 64-bit integers as bigint, enums as numbers, bytes as Buffer,
// maps as plain objects. Wire semantics follow protobuf.js 8 (and the protobuf spec):
// unknown fields and fields of an unexpected wire type are skipped, a sub-message seen
// twice is merged, repeated scalars are read packed or not, and any length running past
// its end, over-long varint, field number 0 or wire type 6/7 throws.
import type { FieldEntry, MessageTable } from "./tables.ts";

/** Field types, numbered as in descriptor.proto. */
const enum Kind {
  Double = 1, Float = 2, Int64 = 3, Uint64 = 4, Int32 = 5, Fixed64 = 6, Fixed32 = 7, Bool = 8,
  String = 9, Message = 11, Bytes = 12, Uint32 = 13, Enum = 14, Sfixed32 = 15, Sfixed64 = 16, Sint32 = 17, Sint64 = 18,
}

const SCALAR_KINDS: Record<string, Kind> = {
  double: Kind.Double, float: Kind.Float, int64: Kind.Int64, uint64: Kind.Uint64, int32: Kind.Int32,
  fixed64: Kind.Fixed64, fixed32: Kind.Fixed32, bool: Kind.Bool, string: Kind.String, bytes: Kind.Bytes,
  uint32: Kind.Uint32, sfixed32: Kind.Sfixed32, sfixed64: Kind.Sfixed64, sint32: Kind.Sint32, sint64: Kind.Sint64,
};

const enum Wire { Varint = 0, Fixed64 = 1, Delimited = 2, StartGroup = 3, EndGroup = 4, Fixed32 = 5 }

const enum Mode { Single = 0, Repeated = 1, Map = 2 }

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** protoc's and protobuf.js's limit on nested messages (and groups). */
const MAX_DEPTH = 100;

function wireOf(kind: Kind): Wire {
  switch (kind) {
    case Kind.Double: case Kind.Fixed64: case Kind.Sfixed64: return Wire.Fixed64;
    case Kind.Float: case Kind.Fixed32: case Kind.Sfixed32: return Wire.Fixed32;
    case Kind.String: case Kind.Bytes: case Kind.Message: return Wire.Delimited;
    default: return Wire.Varint;
  }
}

interface Field {
  name: string;
  no: number;
  kind: Kind;
  wire: Wire;
  mode: Mode;
  /** The message type of a message field (or map value); resolved on first use. */
  typeName: string;
  message: Message | undefined;
  /** Map fields: the key's kind and wire type. */
  keyKind: Kind;
  keyWire: Wire;
}

export interface Message {
  fullName: string;
  /** Fields by number, for decoding. */
  byNumber: Map<number, Field>;
  /** Fields in field-number order, as protobuf encoders write them. */
  ordered: Field[];
  /** Fields in the key order of protobuf.js's toObject: repeated, then maps, then the rest. */
  defaults: Field[];
}

export type Tables = (fullName: string) => MessageTable | undefined;
export type IsEnum = (fullName: string) => boolean;

/** Builds (once per type) the runtime form of the generated tables. */
export class MessageCompiler {
  private readonly compiled = new Map<string, Message>();
  constructor(private readonly tables: Tables, private readonly isEnum: IsEnum) {}

  message(fullName: string): Message {
    let m = this.compiled.get(fullName);
    if (m) return m;
    const table = this.tables(fullName);
    if (!table) throw new Error(`unknown message type ${fullName}`);
    const fields = table.map((e) => this.field(e));
    m = {
      fullName,
      byNumber: new Map(fields.map((f) => [f.no, f])),
      ordered: [...fields].sort((a, b) => a.no - b.no),
      defaults: [...fields.filter((f) => f.mode === Mode.Repeated), ...fields.filter((f) => f.mode === Mode.Map), ...fields.filter((f) => f.mode === Mode.Single)],
    };
    this.compiled.set(fullName, m);
    return m;
  }

  /** The message type of a message field, compiled on first use (types may nest in circles). */
  sub(f: Field): Message {
    return (f.message ??= this.message(f.typeName));
  }

  private kindOf(type: string): Kind {
    const scalar = SCALAR_KINDS[type];
    if (scalar !== undefined) return scalar;
    return this.isEnum(type) ? Kind.Enum : Kind.Message;
  }

  private field([name, no, type, entryMode, keyType = "string"]: FieldEntry): Field {
    const mode: Mode = entryMode ?? Mode.Single;
    const kind = this.kindOf(type);
    const keyKind = this.kindOf(keyType);
    return { name, no, kind, wire: wireOf(kind), mode, typeName: type, message: undefined, keyKind, keyWire: wireOf(keyKind) };
  }
}

// ---------------------------------------------------------------- decoding

class Reader {
  pos = 0;
  /** The two halves of the last varint read (readVarint). */
  lo = 0;
  hi = 0;
  private dataView: DataView | undefined;
  constructor(readonly buf: Buffer, public end: number) {}

  /** For fixed-width fields only: most messages have none, so it is made on first use. */
  get view(): DataView {
    return (this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  /** Reads a varint of up to 10 bytes into lo/hi. */
  readVarint(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    let pos = this.pos;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) throw new RangeError(`truncated varint at offset ${pos}`);
      const b = buf[pos++]!;
      if (i < 4) lo |= (b & 0x7f) << shift;
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      shift += 7;
      if (b < 0x80) {
        this.pos = pos;
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    throw new Error(`invalid varint encoding at offset ${this.pos}`);
  }

  /** A varint that must fit 32 bits unsigned (tags, lengths). */
  uint32(): number {
    this.readVarint();
    if (this.hi !== 0) throw new Error(`varint too long at offset ${this.pos}`);
    return this.lo;
  }

  /** The end offset of a length-delimited value starting here. */
  delimitedEnd(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new RangeError(`length ${len} at offset ${this.pos} runs past the end (${this.end})`);
    return end;
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw new RangeError(`index out of range: ${this.pos} + ${n} > ${this.end}`);
  }

  skip(wire: number, fieldNo: number, depth: number): void {
    if (fieldNo === 0) throw new Error("illegal tag: field number 0");
    switch (wire) {
      case Wire.Varint: this.readVarint(); return;
      case Wire.Fixed64: this.need(8); this.pos += 8; return;
      case Wire.Fixed32: this.need(4); this.pos += 4; return;
      case Wire.Delimited: this.pos = this.delimitedEnd(); return;
      case Wire.StartGroup:
        if (depth > MAX_DEPTH) throw new Error("max depth exceeded");
        for (;;) {
          const tag = this.uint32();
          const no = tag >>> 3;
          if (no === 0) throw new Error("illegal tag: field number 0");
          if ((tag & 7) === Wire.EndGroup) {
            if (no !== fieldNo) throw new Error("invalid end group tag");
            return;
          }
          this.skip(tag & 7, no, depth + 1);
        }
      default:
        throw new Error(`invalid wire type ${wire} at offset ${this.pos}`);
    }
  }

  int64(): bigint {
    const { lo, hi } = this;
    // Exact as a double below 2^53: skip the BigInt arithmetic.
    if (hi < 0x200000) return BigInt(hi * 4294967296 + lo);
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  }

  uint64(): bigint {
    const { lo, hi } = this;
    if (hi < 0x200000) return BigInt(hi * 4294967296 + lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** One scalar of the kind, the wire type already checked. */
  scalar(kind: Kind): unknown {
    switch (kind) {
      case Kind.String: {
        const end = this.delimitedEnd();
        const s = this.buf.toString("utf8", this.pos, end);
        // Invalid UTF-8 became U+FFFD: proto3 strings must be valid, so that throws
        // (a U+FFFD that was really sent passes the strict decoder).
        if (s.includes("\ufffd")) STRICT_UTF8.decode(this.buf.subarray(this.pos, end));
        this.pos = end;
        return s;
      }
      case Kind.Bytes: {
        const end = this.delimitedEnd();
        // A copy: the frame the bytes came in may be reused.
        const b = Buffer.from(this.buf.subarray(this.pos, end));
        this.pos = end;
        return b;
      }
      case Kind.Int32: case Kind.Enum: this.readVarint(); return this.lo | 0;
      case Kind.Uint32: this.readVarint(); return this.lo;
      case Kind.Sint32: this.readVarint(); return (this.lo >>> 1) ^ -(this.lo & 1);
      // protobuf.js reads a bool from the low 32 bits.
      case Kind.Bool: this.readVarint(); return this.lo !== 0;
      case Kind.Int64: this.readVarint(); return this.int64();
      case Kind.Uint64: this.readVarint(); return this.uint64();
      case Kind.Sint64: {
        this.readVarint();
        const u = this.uint64();
        return (u >> 1n) ^ -(u & 1n);
      }
      case Kind.Fixed32: this.need(4); this.pos += 4; return this.view.getUint32(this.pos - 4, true);
      case Kind.Sfixed32: this.need(4); this.pos += 4; return this.view.getInt32(this.pos - 4, true);
      case Kind.Float: this.need(4); this.pos += 4; return this.view.getFloat32(this.pos - 4, true);
      case Kind.Fixed64: this.need(8); this.pos += 8; return this.view.getBigUint64(this.pos - 8, true);
      case Kind.Sfixed64: this.need(8); this.pos += 8; return this.view.getBigInt64(this.pos - 8, true);
      case Kind.Double: this.need(8); this.pos += 8; return this.view.getFloat64(this.pos - 8, true);
      default: throw new Error(`not a scalar kind: ${kind}`);
    }
  }
}

function defaultOf(kind: Kind): unknown {
  switch (kind) {
    case Kind.String: return "";
    case Kind.Bool: return false;
    case Kind.Bytes: return Buffer.alloc(0);
    case Kind.Message: return null;
    case Kind.Int64: case Kind.Uint64: case Kind.Sint64: case Kind.Fixed64: case Kind.Sfixed64: return 0n;
    default: return 0;
  }
}

type Obj = Record<string, unknown>;

function emptyObject(m: Message): Obj {
  const o: Obj = {};
  for (const f of m.defaults) o[f.name] = f.mode === Mode.Repeated ? [] : f.mode === Mode.Map ? {} : defaultOf(f.kind);
  return o;
}

/** A map key as a property name ("__proto__" as an own property, not the prototype). */
function setEntry(map: Obj, key: unknown, value: unknown): void {
  const k = String(key);
  if (k === "__proto__") Object.defineProperty(map, k, { value, enumerable: true, writable: true, configurable: true });
  else map[k] = value;
}

export class WireDecoder {
  constructor(private readonly compiler: MessageCompiler) {}

  decode(m: Message, bytes: Uint8Array): Obj {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const r = new Reader(buf, buf.length);
    return this.message(r, m, buf.length, emptyObject(m), 0);
  }

  /** Fields from r.pos to end, into `into` (a fresh or earlier-decoded object: merging). */
  private message(r: Reader, m: Message, end: number, into: Obj, depth: number): Obj {
    if (depth > MAX_DEPTH) throw new Error("max depth exceeded");
    const outer = r.end;
    r.end = end;
    while (r.pos < end) {
      const tag = r.uint32();
      const no = tag >>> 3;
      const wire = tag & 7;
      const f = m.byNumber.get(no);
      if (f === undefined) {
        r.skip(wire, no, depth);
        continue;
      }
      if (f.mode === Mode.Map) {
        if (wire === Wire.Delimited) this.mapEntry(r, f, into[f.name] as Obj, depth);
        else r.skip(wire, no, depth);
      } else if (f.mode === Mode.Repeated) {
        const list = into[f.name] as unknown[];
        if (wire === f.wire) list.push(f.kind === Kind.Message ? this.nested(r, f, null, depth) : r.scalar(f.kind));
        else if (wire === Wire.Delimited) {
          // Packed scalars.
          const packedEnd = r.delimitedEnd();
          const saved = r.end;
          r.end = packedEnd;
          while (r.pos < packedEnd) list.push(r.scalar(f.kind));
          r.end = saved;
        } else r.skip(wire, no, depth);
      } else if (wire !== f.wire) {
        r.skip(wire, no, depth);
      } else if (f.kind === Kind.Message) {
        into[f.name] = this.nested(r, f, into[f.name] as Obj | null, depth);
      } else {
        into[f.name] = r.scalar(f.kind);
      }
    }
    r.end = outer;
    return into;
  }

  private nested(r: Reader, f: Field, existing: Obj | null, depth: number): Obj {
    const sub = this.compiler.sub(f);
    const end = r.delimitedEnd();
    return this.message(r, sub, end, existing ?? emptyObject(sub), depth + 1);
  }

  private mapEntry(r: Reader, f: Field, map: Obj, depth: number): void {
    const end = r.delimitedEnd();
    const outer = r.end;
    r.end = end;
    let key = defaultOf(f.keyKind);
    let value: unknown = f.kind === Kind.Message ? null : defaultOf(f.kind);
    while (r.pos < end) {
      const tag = r.uint32();
      const no = tag >>> 3;
      const wire = tag & 7;
      if (no === 1 && wire === f.keyWire) key = r.scalar(f.keyKind);
      else if (no === 2 && wire === f.wire) value = f.kind === Kind.Message ? this.nested(r, f, value as Obj | null, depth + 1) : r.scalar(f.kind);
      else r.skip(wire, no, depth + 1);
    }
    r.end = outer;
    if (value === null) value = emptyObject(this.compiler.sub(f));
    setEntry(map, typeof key === "bigint" ? key.toString() : key, value);
  }
}

// ---------------------------------------------------------------- encoding

const INITIAL_SIZE = 256;

class Writer {
  buf = Buffer.allocUnsafe(INITIAL_SIZE);
  pos = 0;
  private dataView: DataView | undefined;

  private get view(): DataView {
    return (this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.dataView = undefined;
  }

  /** An unsigned varint below 2^32. */
  uint32(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** A 64-bit varint from its two unsigned 32-bit halves. */
  varint64(lo: number, hi: number): void {
    if (hi === 0) return this.uint32(lo);
    this.ensure(10);
    const buf = this.buf;
    for (let i = 0; i < 4; i++) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    // Bits 28-34: four of lo, three of hi.
    let b = lo | ((hi & 0x7) << 4);
    hi >>>= 3;
    if (hi === 0) {
      buf[this.pos++] = b;
      return;
    }
    buf[this.pos++] = b | 0x80;
    while (hi > 0x7f) {
      buf[this.pos++] = (hi & 0x7f) | 0x80;
      hi >>>= 7;
    }
    buf[this.pos++] = hi;
  }

  tag(no: number, wire: Wire): void {
    this.uint32(((no << 3) | wire) >>> 0);
  }

  /** Reserves one byte for a length; endDelimited fills it (moving the body if it needs more). */
  startDelimited(): number {
    this.ensure(1);
    return this.pos++;
  }

  endDelimited(at: number): void {
    const len = this.pos - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    const extra = varintSize(len) - 1;
    this.ensure(extra);
    this.buf.copyWithin(at + 1 + extra, at + 1, this.pos);
    this.pos = at;
    this.uint32(len);
    this.pos += len;
  }

  string(s: string): void {
    const at = this.startDelimited();
    this.ensure(s.length * 3);
    this.pos += this.buf.write(s, this.pos, "utf8");
    this.endDelimited(at);
  }

  bytes(b: Uint8Array): void {
    this.uint32(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  fixed32(v: number, signed: boolean): void {
    this.ensure(4);
    if (signed) this.view.setInt32(this.pos, v, true);
    else this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  fixed64(v: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v), true);
    this.pos += 8;
  }

  float(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** A view of what was written: no copy (an ExecSync answer can be 32 MiB). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** An int64 field's value as crib's code may give it: bigint, number or decimal string. */
function toBigInt(v: unknown, field: string): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.trunc(v));
  if (typeof v === "string") return BigInt(v);
  throw new TypeError(`${field}: integer expected`);
}

function writeVarint64(w: Writer, v: unknown, field: string): void {
  // Non-negative safe integers (nearly all: sizes, timestamps) skip BigInt.
  if (typeof v === "number" && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
    const n = Math.trunc(v);
    w.varint64(n >>> 0, Math.floor(n / 4294967296) >>> 0);
    return;
  }
  const b = BigInt.asUintN(64, toBigInt(v, field));
  w.varint64(Number(b & 0xffffffffn), Number(b >> 32n));
}

/** Whether a singular scalar is its proto3 default, which is not written. */
function isDefault(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case Kind.String: return v === "";
    case Kind.Bytes: return (v as Uint8Array).length === 0;
    case Kind.Bool: return !v;
    case Kind.Double: case Kind.Float: return Object.is(v, 0);
    default: return v === 0 || v === 0n || v === "0";
  }
}

export class WireEncoder {
  constructor(private readonly compiler: MessageCompiler) {}

  encode(m: Message, value: object): Buffer {
    const w = new Writer();
    this.message(w, m, value as Obj, m.fullName, 0);
    return w.finish();
  }

  private message(w: Writer, m: Message, o: Obj, path: string, depth: number): void {
    if (depth > MAX_DEPTH) throw new Error("max depth exceeded");
    for (const f of m.ordered) {
      const v = o[f.name];
      if (v === undefined || v === null) continue;
      if (f.mode === Mode.Single) {
        if (f.kind === Kind.Message) this.nested(w, f, v, `${path}.${f.name}`, depth);
        else if (!isDefault(f.kind, v)) {
          w.tag(f.no, f.wire);
          this.scalar(w, f.kind, v, `${path}.${f.name}`);
        }
      } else if (f.mode === Mode.Repeated) {
        if (!Array.isArray(v)) throw new TypeError(`${path}.${f.name}: array expected`);
        if (v.length === 0) continue;
        if (f.wire === Wire.Delimited) {
          for (const e of v) {
            if (f.kind === Kind.Message) this.nested(w, f, e, `${path}.${f.name}`, depth);
            else {
              w.tag(f.no, f.wire);
              this.scalar(w, f.kind, e, `${path}.${f.name}`);
            }
          }
        } else {
          w.tag(f.no, Wire.Delimited);
          const at = w.startDelimited();
          for (const e of v) this.scalar(w, f.kind, e, `${path}.${f.name}`);
          w.endDelimited(at);
        }
      } else {
        if (typeof v !== "object") throw new TypeError(`${path}.${f.name}: object expected`);
        for (const [k, e] of Object.entries(v as Obj)) {
          w.tag(f.no, Wire.Delimited);
          const at = w.startDelimited();
          w.tag(1, f.keyWire);
          this.scalar(w, f.keyKind, f.keyKind === Kind.Bool ? k === "true" : k, `${path}.${f.name}`);
          if (f.kind === Kind.Message) this.nested(w, f, e ?? {}, `${path}.${f.name}`, depth, 2);
          else if (e !== undefined && e !== null) {
            w.tag(2, f.wire);
            this.scalar(w, f.kind, e, `${path}.${f.name}`);
          }
          w.endDelimited(at);
        }
      }
    }
  }

  private nested(w: Writer, f: Field, v: unknown, path: string, depth: number, no = f.no): void {
    if (typeof v !== "object" || v === null) throw new TypeError(`${path}: object expected`);
    w.tag(no, Wire.Delimited);
    const at = w.startDelimited();
    this.message(w, this.compiler.sub(f), v as Obj, path, depth + 1);
    w.endDelimited(at);
  }

  private scalar(w: Writer, kind: Kind, v: unknown, path: string): void {
    switch (kind) {
      case Kind.String: return w.string(typeof v === "string" ? v : String(v));
      case Kind.Bytes:
        if (!(v instanceof Uint8Array)) throw new TypeError(`${path}: bytes expected`);
        return w.bytes(v);
      case Kind.Bool: return w.uint32(v ? 1 : 0);
      case Kind.Int32: case Kind.Enum: {
        const n = Number(v) | 0;
        return n >= 0 ? w.uint32(n) : w.varint64(n >>> 0, 0xffffffff);
      }
      case Kind.Uint32: return w.uint32(Number(v) >>> 0);
      case Kind.Sint32: {
        const n = Number(v) | 0;
        return w.uint32(((n << 1) ^ (n >> 31)) >>> 0);
      }
      case Kind.Int64: case Kind.Uint64: return writeVarint64(w, v, path);
      case Kind.Sint64: {
        const b = BigInt.asIntN(64, toBigInt(v, path));
        const z = BigInt.asUintN(64, (b << 1n) ^ (b >> 63n));
        return w.varint64(Number(z & 0xffffffffn), Number(z >> 32n));
      }
      case Kind.Fixed32: return w.fixed32(Number(v) >>> 0, false);
      case Kind.Sfixed32: return w.fixed32(Number(v) | 0, true);
      case Kind.Fixed64: case Kind.Sfixed64: return w.fixed64(toBigInt(v, path));
      case Kind.Float: return w.float(Number(v));
      case Kind.Double: return w.double(Number(v));
      default: throw new Error(`not a scalar kind: ${kind}`);
    }
  }
}
