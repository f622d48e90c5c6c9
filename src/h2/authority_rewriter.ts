// Rewrites the `:authority` of every request on an HTTP/2 connection, client to
// server, before the server's parser sees it.
//
// Why: gRPC clients disagree on the `:authority` they send over a unix socket.
// grpc-go dialing a bare path (kubelets and crictl before Kubernetes 1.31, most Go
// CRI tools) sends the socket path ("/run/crib/crib.sock"), others send "localhost"
// or an empty value. Bun's HTTP/2 server (like Node's) resets every stream whose
// `:authority` holds a "/" or is empty, or that has none (PROTOCOL_ERROR), before any
// gRPC code runs (see docs/bun-h2-authority.md). containerd and CRI-O accept them
// all, and so must we.
//
// How: frames pass through untouched except header blocks (HEADERS and their
// CONTINUATIONs), which are decoded with a full HPACK decoder that mirrors the
// client's dynamic table, have `:authority` replaced where the server would refuse
// it, and are re-encoded as literals without indexing (hpack.ts), so the server's
// table stays empty and in step. Anything that does not parse (a client's protocol
// error) turns the rewriter into a plain pipe for the rest of the connection, so the
// server itself answers it as it would have.
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField } from "./hpack.ts";

const PREFACE_LENGTH = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const FRAME_HEADER_LENGTH = 9;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** Frames we write stay within the smallest SETTINGS_MAX_FRAME_SIZE a server may have. */
const MAX_FRAME_PAYLOAD = 16384;
/** A header block whose frames (headers included) exceed this is not rewritten (the server refuses such blocks anyway). */
const MAX_HEADER_BLOCK = 1 << 20;

/** The authority used where the client's would be refused: what kubelets from 1.31 on send. */
export const FALLBACK_AUTHORITY = "localhost";

/** host[:port] as RFC 3986 allows it (reg-name, IPv4, [IPv6]); anything else is replaced. */
const ACCEPTED_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=%:[\]]+$/;

/** The value to send instead of `authority`, or undefined to keep it. */
export function replacementAuthority(authority: string): string | undefined {
  return ACCEPTED_AUTHORITY.test(authority) ? undefined : FALLBACK_AUTHORITY;
}

/**
 * Make the `:authority` of a request's header block one the server accepts: a
 * refused value is replaced, and a request without one (HTTP/2 allows that; Bun
 * resets it too) gets one. Trailers (no `:method`) are left alone. True if changed.
 */
export function fixAuthority(fields: HeaderField[]): boolean {
  const authority = fields.find((f) => f.name === ":authority");
  if (authority) {
    const replacement = replacementAuthority(authority.value);
    if (replacement === undefined) return false;
    authority.value = replacement;
    return true;
  }
  if (!fields.some((f) => f.name === ":method")) return false;
  fields.unshift({ name: ":authority", value: FALLBACK_AUTHORITY, sensitive: false }); // pseudo-headers come first
  return true;
}

interface OpenBlock {
  streamId: number;
  flags: number;
  priority: Uint8Array | undefined;
  fragments: Uint8Array[];
  /** Bytes of its frames so far, headers included: empty CONTINUATIONs count too. */
  size: number;
  /** The frames as received, sent on unchanged if the block does not decode. */
  raw: Uint8Array[];
}

export class AuthorityRewriter {
  private pending: Uint8Array | undefined;
  private prefaceLeft = PREFACE_LENGTH;
  private readonly decoder = new HpackDecoder();
  private open: OpenBlock | undefined;
  private passthrough = false;
  /** Header blocks rewritten so far (for tests and logs). */
  rewritten = 0;

  /** True once the rewriter gave up on a malformed stream and only passes bytes on. */
  get abandoned(): boolean {
    return this.passthrough;
  }

  /** Bytes from the client in, bytes for the server out (possibly none yet). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.passthrough) return [chunk];
    const data = this.pending ? concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const out: Uint8Array[] = [];
    let pos = 0;
    let spanStart = 0; // start of the bytes that pass through unchanged
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, data.length);
      this.prefaceLeft -= n;
      pos = n;
    }
    while (data.length - pos >= FRAME_HEADER_LENGTH) {
      const length = (data[pos]! << 16) | (data[pos + 1]! << 8) | data[pos + 2]!;
      const end = pos + FRAME_HEADER_LENGTH + length;
      if (end > data.length) break;
      const type = data[pos + 3]!;
      if (type === TYPE_HEADERS || type === TYPE_CONTINUATION || this.open) {
        if (pos > spanStart) out.push(data.subarray(spanStart, pos));
        const frame = data.subarray(pos, end);
        const result = this.headerFrame(frame);
        if (result === "invalid") {
          // No spread: a block's held frames can be too many for one call's arguments.
          for (const held of this.abandon()) out.push(held);
          out.push(data.subarray(pos));
          return out;
        }
        if (result) out.push(result);
        spanStart = end;
      }
      pos = end;
    }
    if (pos > spanStart) out.push(data.subarray(spanStart, pos));
    if (pos < data.length) this.pending = data.slice(pos);
    return out;
  }

  /** Handle one HEADERS or CONTINUATION frame; the rewritten block once it is complete. */
  private headerFrame(frame: Uint8Array): Uint8Array | undefined | "invalid" {
    const type = frame[3]!;
    const flags = frame[4]!;
    const streamId = ((frame[5]! << 24) | (frame[6]! << 16) | (frame[7]! << 8) | frame[8]!) & 0x7fffffff;
    const payload = frame.subarray(FRAME_HEADER_LENGTH);
    if (type === TYPE_HEADERS && !this.open) {
      let start = 0;
      let padding = 0;
      if (flags & FLAG_PADDED) {
        if (payload.length < 1) return "invalid";
        padding = payload[0]!;
        start = 1;
      }
      let priority: Uint8Array | undefined;
      if (flags & FLAG_PRIORITY) {
        priority = payload.slice(start, start + 5);
        start += 5;
      }
      if (start + padding > payload.length) return "invalid";
      const fragment = payload.slice(start, payload.length - padding);
      this.open = { streamId, flags, priority, fragments: [fragment], size: frame.length, raw: [] };
    } else if (type === TYPE_CONTINUATION && this.open && this.open.streamId === streamId) {
      this.open.fragments.push(payload.slice());
      this.open.size += frame.length;
    } else {
      return "invalid"; // a frame inside a header block, or a stray CONTINUATION
    }
    // The frame being handled is not in `raw` when this answers "invalid": push()
    // sends it on itself, with everything after it.
    if (this.open.size > MAX_HEADER_BLOCK) return "invalid";
    if (flags & FLAG_END_HEADERS) return this.finish();
    this.open.raw.push(frame.slice());
    return undefined;
  }

  private finish(): Uint8Array | "invalid" {
    const block = this.open!;
    let fields: HeaderField[];
    let sizeUpdates: number[];
    try {
      ({ fields, sizeUpdates } = this.decoder.decode(concat(block.fragments)));
    } catch (e) {
      if (e instanceof HpackError) return "invalid";
      throw e;
    }
    this.open = undefined;
    if (fixAuthority(fields)) this.rewritten++;
    return headerFrames(block.streamId, block.flags & FLAG_END_STREAM, block.priority, encodeLiterals(fields, sizeUpdates));
  }

  /** Give up rewriting: what was held back goes on unchanged, and so does everything after. */
  private abandon(): Uint8Array[] {
    this.passthrough = true;
    const held = this.open?.raw ?? [];
    this.open = undefined;
    return held;
  }
}

/** A HEADERS frame (and CONTINUATIONs as needed) carrying `block`. */
function headerFrames(streamId: number, endStream: number, priority: Uint8Array | undefined, block: Uint8Array): Uint8Array {
  const frames: Uint8Array[] = [];
  const firstRoom = MAX_FRAME_PAYLOAD - (priority?.length ?? 0);
  let offset = Math.min(firstRoom, block.length);
  const first = block.subarray(0, offset);
  const more = offset < block.length;
  const flags = endStream | (priority ? FLAG_PRIORITY : 0) | (more ? 0 : FLAG_END_HEADERS);
  frames.push(frameHeader(first.length + (priority?.length ?? 0), TYPE_HEADERS, flags, streamId));
  if (priority) frames.push(priority);
  frames.push(first);
  while (offset < block.length) {
    const piece = block.subarray(offset, offset + MAX_FRAME_PAYLOAD);
    offset += piece.length;
    frames.push(frameHeader(piece.length, TYPE_CONTINUATION, offset >= block.length ? FLAG_END_HEADERS : 0, streamId), piece);
  }
  return concat(frames);
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_LENGTH);
  h[0] = (length >> 16) & 0xff;
  h[1] = (length >> 8) & 0xff;
  h[2] = length & 0xff;
  h[3] = type;
  h[4] = flags;
  new DataView(h.buffer).setUint32(5, streamId & 0x7fffffff);
  return h;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
