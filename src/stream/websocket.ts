// WebSocket (RFC 6455) framing and a minimal connection for either side: the
// handshake key, frame encode/decode (client frames masked, server frames not),
// fragmented messages, ping/pong and the closing handshake.

import { createHash, randomBytes } from "node:crypto";
import type net from "node:net";
import { drained, saturated } from "./backpressure.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function websocketAccept(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** A fresh Sec-WebSocket-Key (16 random bytes, base64). */
export function websocketKey(): string {
  return randomBytes(16).toString("base64");
}

export const WsOpcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

export interface WsFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

export class WebSocketProtocolError extends Error {
  constructor(
    message: string,
    /** The close code to send (1002 protocol error, 1009 too big). */
    readonly code = 1002,
  ) {
    super(message);
    this.name = "WebSocketProtocolError";
  }
}

/** One frame; `mask` (4 bytes) masks the payload, as clients must. */
export function encodeWsFrame(opcode: number, payload: Uint8Array, opts: { mask?: Uint8Array; fin?: boolean } = {}): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len <= 0xffff ? 2 : 8;
  const maskLen = opts.mask ? 4 : 0;
  const out = Buffer.allocUnsafe(2 + ext + maskLen + len);
  out[0] = ((opts.fin ?? true) ? 0x80 : 0) | (opcode & 0x0f);
  out[1] = (opts.mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) out.writeUInt16BE(len, 2);
  else if (ext === 8) out.writeBigUInt64BE(BigInt(len), 2);
  const body = 2 + ext + maskLen;
  out.set(payload, body);
  if (opts.mask) {
    const m = opts.mask;
    out.set(m.subarray(0, 4), 2 + ext);
    for (let i = 0; i < len; i++) out[body + i]! ^= m[i & 3]!;
  }
  return out;
}

/** Cuts a byte stream into frames (payloads unmasked). */
export class WsFrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPayload = 16 * 1024 * 1024) {}

  push(chunk: Uint8Array): WsFrame[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const frames: WsFrame[] = [];
    let off = 0;
    for (;;) {
      const avail = this.buf.length - off;
      if (avail < 2) break;
      const b0 = this.buf[off]!;
      const b1 = this.buf[off + 1]!;
      if ((b0 & 0x70) !== 0) throw new WebSocketProtocolError("a WebSocket frame uses reserved bits (no extension was negotiated)");
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (avail < 4) break;
        len = this.buf.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (avail < 10) break;
        const big = this.buf.readBigUInt64BE(off + 2);
        if (big > BigInt(this.maxPayload)) throw new WebSocketProtocolError(`a WebSocket frame of ${big} bytes is too large`, 1009);
        len = Number(big);
        head = 10;
      }
      if (len > this.maxPayload) throw new WebSocketProtocolError(`a WebSocket frame of ${len} bytes is too large`, 1009);
      const opcode = b0 & 0x0f;
      if (opcode >= 0x8 && (len > 125 || (b0 & 0x80) === 0)) throw new WebSocketProtocolError("a WebSocket control frame is fragmented or longer than 125 bytes");
      const maskLen = masked ? 4 : 0;
      if (avail < head + maskLen + len) break;
      const payload = Buffer.from(this.buf.subarray(off + head + maskLen, off + head + maskLen + len));
      if (masked) {
        const m = this.buf.subarray(off + head, off + head + 4);
        for (let i = 0; i < len; i++) payload[i]! ^= m[i & 3]!;
      }
      frames.push({ fin: (b0 & 0x80) !== 0, opcode, masked, payload });
      off += head + maskLen + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return frames;
  }
}

export type WsRole = "server" | "client";


/**
 * A WebSocket over an upgraded socket: whole messages in, messages out. The server
 * requires masked frames from the client; the client masks what it sends.
 */
export class WebSocketConnection {
  private readonly reader: WsFrameReader;
  private fragments: Buffer[] = [];
  private fragmentOpcode = 0;
  private fragmentBytes = 0;
  private readonly messageFns: Array<(data: Buffer, binary: boolean) => void> = [];
  private readonly closeFns: Array<(code: number, reason: string) => void> = [];
  private closeSent = false;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    readonly role: WsRole,
    head?: Uint8Array,
    private readonly maxMessage = 16 * 1024 * 1024,
  ) {
    this.reader = new WsFrameReader(maxMessage);
    socket.on("data", (chunk: Buffer) => this.ingest(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => this.finished(1006, "connection closed"));
    if (head !== undefined && head.length > 0) queueMicrotask(() => this.ingest(head));
  }

  onMessage(fn: (data: Buffer, binary: boolean) => void): void {
    this.messageFns.push(fn);
  }

  /** Once, when the connection is gone (after the closing handshake or a drop). */
  onClose(fn: (code: number, reason: string) => void): void {
    this.closeFns.push(fn);
  }

  send(data: Uint8Array, binary = true): boolean {
    this.write(binary ? WsOpcode.BINARY : WsOpcode.TEXT, data);
    return !this.saturated;
  }

  get saturated(): boolean {
    return saturated(this.socket);
  }

  drain(): Promise<void> {
    return drained(this.socket, this.closed);
  }

  /** Start the closing handshake; the socket ends when the peer answers (or after `graceMs`). */
  close(code = 1000, reason = "", graceMs = 2000): void {
    if (this.closed) return;
    if (!this.closeSent) {
      this.closeSent = true;
      const r = Buffer.from(reason, "utf8").subarray(0, 123);
      const payload = Buffer.alloc(2 + r.length);
      payload.writeUInt16BE(code, 0);
      r.copy(payload, 2);
      this.write(WsOpcode.CLOSE, payload);
    }
    this.closeTimer ??= setTimeout(() => this.socket.destroy(), graceMs);
  }

  private write(opcode: number, payload: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    const mask = this.role === "client" ? randomBytes(4) : undefined;
    this.socket.write(encodeWsFrame(opcode, payload, { mask }));
  }

  private ingest(chunk: Uint8Array): void {
    if (this.closed) return;
    let frames: WsFrame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      const e = err as WebSocketProtocolError;
      this.close(e.code ?? 1002, e.message.slice(0, 100), 500);
      return;
    }
    for (const f of frames) {
      if (this.role === "server" && !f.masked) {
        this.close(1002, "client frames must be masked", 500);
        return;
      }
      this.frame(f);
    }
  }

  private frame(f: WsFrame): void {
    switch (f.opcode) {
      case WsOpcode.PING:
        this.write(WsOpcode.PONG, f.payload);
        return;
      case WsOpcode.PONG:
        return;
      case WsOpcode.CLOSE: {
        const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
        const reason = f.payload.length > 2 ? f.payload.toString("utf8", 2) : "";
        if (!this.closeSent) {
          this.closeSent = true;
          this.write(WsOpcode.CLOSE, f.payload.subarray(0, 2));
        }
        this.socket.end();
        this.finished(code, reason);
        return;
      }
      case WsOpcode.TEXT:
      case WsOpcode.BINARY:
        if (this.fragments.length > 0) {
          this.close(1002, "a new message began inside a fragmented one", 500);
          return;
        }
        if (f.fin) {
          this.deliver(f.payload, f.opcode === WsOpcode.BINARY);
          return;
        }
        this.fragmentOpcode = f.opcode;
        this.fragments = [f.payload];
        this.fragmentBytes = f.payload.length;
        return;
      case WsOpcode.CONTINUATION:
        if (this.fragments.length === 0) {
          this.close(1002, "a continuation frame without a message", 500);
          return;
        }
        this.fragmentBytes += f.payload.length;
        if (this.fragmentBytes > this.maxMessage) {
          this.close(1009, "message too large", 500);
          return;
        }
        this.fragments.push(f.payload);
        if (f.fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = [];
          this.deliver(whole, this.fragmentOpcode === WsOpcode.BINARY);
        }
        return;
      default:
        this.close(1002, `unknown opcode ${f.opcode}`, 500);
    }
  }

  private deliver(data: Buffer, binary: boolean): void {
    for (const fn of this.messageFns) fn(data, binary);
  }

  private finished(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    for (const fn of this.closeFns.splice(0)) fn(code, reason);
  }
}
