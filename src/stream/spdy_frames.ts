// SPDY/3.1 framing, pure (no I/O): frame encoders, an incremental frame reader, and
// name/value header blocks (uncompressed; see spdy_compression.ts for zlib).
//
//   data frame     |0| stream id (31) | flags (8) | length (24) | data
//   control frame  |1| version (15) | type (16) | flags (8) | length (24) | payload

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes. */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

/** GOAWAY status codes. */
export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

/** The largest payload a frame's 24-bit length can announce. */
export const MAX_FRAME_PAYLOAD = 0xffffff;
/** Data is sent in frames of at most this much. */
export const DATA_CHUNK = 32 * 1024;

export interface SettingsEntry {
  flags: number;
  id: number;
  value: number;
}

export type Frame =
  | { type: "data"; streamId: number; flags: number; data: Uint8Array }
  | { type: "syn_stream"; streamId: number; associatedId: number; priority: number; flags: number; headerBlock: Uint8Array }
  | { type: "syn_reply"; streamId: number; flags: number; headerBlock: Uint8Array }
  | { type: "rst_stream"; streamId: number; status: number }
  | { type: "settings"; flags: number; entries: SettingsEntry[] }
  | { type: "ping"; id: number }
  | { type: "goaway"; lastGoodStreamId: number; status: number }
  | { type: "headers"; streamId: number; flags: number; headerBlock: Uint8Array }
  | { type: "window_update"; streamId: number; delta: number }
  /** A control frame type this implementation does not know: ignored, as the spec asks. */
  | { type: "unknown"; frameType: number; flags: number };

export class SpdyProtocolError extends Error {
  constructor(
    message: string,
    /** The stream the error is about (0: the whole session). */
    readonly streamId = 0,
  ) {
    super(message);
    this.name = "SpdyProtocolError";
  }
}

// ---- encoders ----

function control(type: number, flags: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError(`SPDY control frame payload of ${payload.length} bytes is too large`);
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt32BE((0x80000000 | (SPDY_VERSION << 16) | type) >>> 0, 0);
  out.writeUInt32BE(((flags & 0xff) << 24 | payload.length) >>> 0, 4);
  out.set(payload, 8);
  return out;
}

function u32s(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

const streamIdOf = (id: number): number => id & 0x7fffffff;

/** One DATA frame (callers split large payloads; see DATA_CHUNK). */
export function encodeData(streamId: number, data: Uint8Array, flags = 0): Buffer {
  if (data.length > MAX_FRAME_PAYLOAD) throw new RangeError(`SPDY data frame of ${data.length} bytes is too large`);
  const out = Buffer.allocUnsafe(8 + data.length);
  out.writeUInt32BE(streamIdOf(streamId), 0);
  out.writeUInt32BE(((flags & 0xff) << 24 | data.length) >>> 0, 4);
  out.set(data, 8);
  return out;
}

/** SYN_STREAM with an already compressed header block. */
export function encodeSynStream(streamId: number, headerBlock: Uint8Array, opts: { flags?: number; associatedId?: number; priority?: number } = {}): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt32BE(streamIdOf(streamId), 0);
  head.writeUInt32BE(streamIdOf(opts.associatedId ?? 0), 4);
  head[8] = ((opts.priority ?? 0) & 0x7) << 5;
  head[9] = 0; // slot (unused)
  return control(FrameType.SYN_STREAM, opts.flags ?? 0, Buffer.concat([head, headerBlock]));
}

export function encodeSynReply(streamId: number, headerBlock: Uint8Array, flags = 0): Buffer {
  return control(FrameType.SYN_REPLY, flags, Buffer.concat([u32s(streamIdOf(streamId)), headerBlock]));
}

export function encodeHeaders(streamId: number, headerBlock: Uint8Array, flags = 0): Buffer {
  return control(FrameType.HEADERS, flags, Buffer.concat([u32s(streamIdOf(streamId)), headerBlock]));
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  return control(FrameType.RST_STREAM, 0, u32s(streamIdOf(streamId), status));
}

export function encodeSettings(entries: SettingsEntry[], flags = 0): Buffer {
  const payload = Buffer.allocUnsafe(4 + entries.length * 8);
  payload.writeUInt32BE(entries.length, 0);
  entries.forEach((e, i) => {
    payload.writeUInt32BE((((e.flags & 0xff) << 24) | (e.id & 0xffffff)) >>> 0, 4 + i * 8);
    payload.writeUInt32BE(e.value >>> 0, 8 + i * 8);
  });
  return control(FrameType.SETTINGS, flags, payload);
}

export function encodePing(id: number): Buffer {
  return control(FrameType.PING, 0, u32s(id));
}

export function encodeGoAway(lastGoodStreamId: number, status: number = GoAwayStatus.OK): Buffer {
  return control(FrameType.GOAWAY, 0, u32s(streamIdOf(lastGoodStreamId), status));
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  return control(FrameType.WINDOW_UPDATE, 0, u32s(streamIdOf(streamId), delta & 0x7fffffff));
}

// ---- reader ----

/**
 * Cuts a byte stream into frames. push() returns every frame completed by the chunk;
 * a malformed frame throws SpdyProtocolError (the session must end).
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    /** Largest control frame payload accepted (header blocks are small). */
    private readonly maxControlPayload = 1 << 20,
    private readonly maxDataPayload = MAX_FRAME_PAYLOAD,
  ) {}

  push(chunk: Uint8Array): Frame[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= 8) {
      const w1 = this.buf.readUInt32BE(off);
      const w2 = this.buf.readUInt32BE(off + 4);
      const flags = w2 >>> 24;
      const length = w2 & 0xffffff;
      const isControl = (w1 & 0x80000000) !== 0;
      if (isControl ? length > this.maxControlPayload : length > this.maxDataPayload) {
        throw new SpdyProtocolError(`SPDY frame of ${length} bytes is larger than allowed`, isControl ? 0 : w1 & 0x7fffffff);
      }
      if (this.buf.length - off - 8 < length) break;
      const payload = this.buf.subarray(off + 8, off + 8 + length);
      off += 8 + length;
      if (!isControl) {
        const streamId = w1 & 0x7fffffff;
        if (streamId === 0) throw new SpdyProtocolError("SPDY data frame on stream 0");
        frames.push({ type: "data", streamId, flags, data: Buffer.from(payload) });
      } else {
        const version = (w1 >>> 16) & 0x7fff;
        if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version} (only 3 is spoken)`);
        frames.push(parseControl(w1 & 0xffff, flags, payload));
      }
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return frames;
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buf.length;
  }
}

function need(payload: Buffer, n: number, what: string): void {
  if (payload.length < n) throw new SpdyProtocolError(`SPDY ${what} frame is too short (${payload.length} bytes)`);
}

function parseControl(type: number, flags: number, p: Buffer): Frame {
  switch (type) {
    case FrameType.SYN_STREAM: {
      need(p, 10, "SYN_STREAM");
      const streamId = p.readUInt32BE(0) & 0x7fffffff;
      if (streamId === 0) throw new SpdyProtocolError("SYN_STREAM for stream 0");
      return { type: "syn_stream", streamId, associatedId: p.readUInt32BE(4) & 0x7fffffff, priority: (p[8]! >> 5) & 0x7, flags, headerBlock: Buffer.from(p.subarray(10)) };
    }
    case FrameType.SYN_REPLY: {
      need(p, 4, "SYN_REPLY");
      return { type: "syn_reply", streamId: p.readUInt32BE(0) & 0x7fffffff, flags, headerBlock: Buffer.from(p.subarray(4)) };
    }
    case FrameType.HEADERS: {
      need(p, 4, "HEADERS");
      return { type: "headers", streamId: p.readUInt32BE(0) & 0x7fffffff, flags, headerBlock: Buffer.from(p.subarray(4)) };
    }
    case FrameType.RST_STREAM:
      need(p, 8, "RST_STREAM");
      return { type: "rst_stream", streamId: p.readUInt32BE(0) & 0x7fffffff, status: p.readUInt32BE(4) };
    case FrameType.SETTINGS: {
      need(p, 4, "SETTINGS");
      const n = p.readUInt32BE(0);
      if (p.length !== 4 + n * 8) throw new SpdyProtocolError(`SETTINGS frame announces ${n} entries in ${p.length} bytes`);
      const entries: SettingsEntry[] = [];
      for (let i = 0; i < n; i++) {
        const w = p.readUInt32BE(4 + i * 8);
        entries.push({ flags: w >>> 24, id: w & 0xffffff, value: p.readUInt32BE(8 + i * 8) });
      }
      return { type: "settings", flags, entries };
    }
    case FrameType.PING:
      need(p, 4, "PING");
      return { type: "ping", id: p.readUInt32BE(0) };
    case FrameType.GOAWAY:
      need(p, 4, "GOAWAY");
      return { type: "goaway", lastGoodStreamId: p.readUInt32BE(0) & 0x7fffffff, status: p.length >= 8 ? p.readUInt32BE(4) : 0 };
    case FrameType.WINDOW_UPDATE:
      need(p, 8, "WINDOW_UPDATE");
      return { type: "window_update", streamId: p.readUInt32BE(0) & 0x7fffffff, delta: p.readUInt32BE(4) & 0x7fffffff };
    default:
      return { type: "unknown", frameType: type, flags };
  }
}

// ---- name/value header blocks ----

/** Header names (lowercase, as SPDY requires) to their values. */
export type SpdyHeaders = Map<string, string[]>;

/** Encode a header block; names are lowercased, several values joined with NUL. */
export function encodeHeaderBlock(headers: Record<string, string | string[]> | SpdyHeaders): Buffer {
  const entries: [string, string[]][] = headers instanceof Map
    ? [...headers.entries()]
    : Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]);
  const merged = new Map<string, string[]>();
  for (const [k, v] of entries) {
    const name = k.toLowerCase();
    if (name === "") throw new RangeError("SPDY header names must not be empty");
    merged.set(name, [...(merged.get(name) ?? []), ...v]);
  }
  const parts: Buffer[] = [u32s(merged.size)];
  for (const [name, values] of merged) {
    const n = Buffer.from(name, "utf8");
    const v = Buffer.from(values.join("\0"), "utf8");
    parts.push(u32s(n.length), n, u32s(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Decode an (uncompressed) header block. Names are lowercased; duplicates are merged. */
export function decodeHeaderBlock(block: Uint8Array, maxPairs = 1024): SpdyHeaders {
  const b = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  const fail = (why: string): never => {
    throw new SpdyProtocolError(`malformed SPDY header block: ${why}`);
  };
  if (b.length < 4) fail("shorter than its pair count");
  const count = b.readUInt32BE(0);
  if (count > maxPairs) fail(`${count} pairs (at most ${maxPairs})`);
  const out: SpdyHeaders = new Map();
  let off = 4;
  const take = (what: string): string => {
    if (off + 4 > b.length) fail(`truncated ${what} length`);
    const len = b.readUInt32BE(off);
    off += 4;
    if (off + len > b.length) fail(`truncated ${what}`);
    const s = b.toString("utf8", off, off + len);
    off += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const name = take("name").toLowerCase();
    if (name === "") fail("empty header name");
    const values = take("value").split("\0");
    out.set(name, [...(out.get(name) ?? []), ...values]);
  }
  return out;
}
