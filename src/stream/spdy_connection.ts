// A SPDY/3.1 session over one socket, for either side: the streaming server (streams
// opened by the client, answered with SYN_REPLY at once, as the kubelet does) and
// crib ctl's client. Flow control is not enforced in either direction: the Go
// implementation kubectl, crictl and the kubelet use (spdystream) ignores
// WINDOW_UPDATE and never sends it; back-pressure comes from the socket instead.

import type net from "node:net";
import { drained, saturated } from "./backpressure.ts";
import { HeaderCompressor, HeaderDecompressor } from "./spdy_compression.ts";
import {
  DATA_CHUNK,
  decodeHeaderBlock,
  encodeData,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  encodeSynStream,
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  FrameReader,
  GoAwayStatus,
  RstStatus,
  SpdyProtocolError,
  type Frame,
  type SpdyHeaders,
} from "./spdy_frames.ts";

export type SpdyRole = "server" | "client";

/** Data kept for a stream that has no reader yet. */
const MAX_UNREAD = 1024 * 1024;

interface Reader {
  data(chunk: Uint8Array): void;
  end(reset: boolean): void;
}

export class SpdyStream {
  private reader: Reader | undefined;
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  /** The peer finished sending (FIN, RST_STREAM or the session ended). */
  remoteEnded = false;
  /** We finished sending (FIN or RST_STREAM). */
  localEnded = false;
  /** Ended by RST_STREAM (either side) or by the session closing. */
  wasReset = false;

  constructor(
    readonly id: number,
    readonly headers: SpdyHeaders,
    private readonly conn: SpdyConnection,
  ) {}

  /** The first value of a header (names are case-insensitive). */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  /**
   * Receive the peer's data, then one end() call. Data that arrived before a reader
   * was set is delivered first.
   */
  read(reader: Reader): void {
    this.reader = reader;
    this.queuedBytes = 0;
    for (const c of this.queued.splice(0)) reader.data(c);
    if (this.remoteEnded) reader.end(this.wasReset);
  }

  /** Queue data for the peer; false when the session is above its high-water mark (await drain()). */
  write(data: Uint8Array): boolean {
    if (this.localEnded) return false;
    for (let off = 0; off < data.length; off += DATA_CHUNK) {
      this.conn.send(encodeData(this.id, data.subarray(off, Math.min(data.length, off + DATA_CHUNK))));
    }
    return !this.conn.saturated;
  }

  /** Resolves once the session's outgoing buffer is under its high-water mark. */
  drain(): Promise<void> {
    return this.conn.drain();
  }

  /** Stop reading the whole session (back-pressure from where this stream's data goes). */
  pauseInput(): void {
    this.conn.pauseInput();
  }

  resumeInput(): void {
    this.conn.resumeInput();
  }

  /** Half-close: FIN, no more data from us. Idempotent. */
  end(): void {
    if (this.localEnded) return;
    this.localEnded = true;
    this.conn.send(encodeData(this.id, new Uint8Array(0), FLAG_FIN));
    this.conn.forgetIfDone(this);
  }

  /** Abort the stream both ways (RST_STREAM). */
  reset(status: number = RstStatus.CANCEL): void {
    if (!this.localEnded || !this.remoteEnded) this.conn.send(encodeRstStream(this.id, status));
    this.localEnded = true;
    this.remoteFinished(true);
  }

  /** @internal data from the peer */
  received(data: Uint8Array): void {
    if (this.remoteEnded || data.length === 0) return;
    if (this.reader) return this.reader.data(data);
    this.queuedBytes += data.length;
    // Data on a stream nobody reads (a client writing into its stdout stream) is bounded.
    if (this.queuedBytes > MAX_UNREAD) {
      this.queued = [];
      this.reset(RstStatus.FLOW_CONTROL_ERROR);
      return;
    }
    this.queued.push(data);
  }

  /** @internal the peer is done (or gone) */
  remoteFinished(reset: boolean): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.wasReset = reset;
    if (reset) this.localEnded = true;
    this.reader?.end(reset);
    this.conn.forgetIfDone(this);
  }
}

interface PendingOpen {
  stream: SpdyStream;
  resolve(s: SpdyStream): void;
  reject(e: Error): void;
}

export class SpdyConnection {
  private readonly reader = new FrameReader();
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly streams = new Map<number, SpdyStream>();
  private readonly pendingOpens = new Map<number, PendingOpen>();
  private readonly inbox: Frame[] = [];
  private pumping = false;
  private lastRemoteStreamId = 0;
  private nextLocalStreamId: number;
  private readonly streamFns: Array<(s: SpdyStream) => void> = [];
  private readonly closeFns: Array<(err?: Error) => void> = [];
  private pauses = 0;
  private sentGoAway = false;
  /** The peer sent GOAWAY: it opens no more streams. */
  peerGoneAway = false;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    readonly role: SpdyRole,
    head?: Uint8Array,
  ) {
    this.nextLocalStreamId = role === "client" ? 1 : 2;
    socket.on("data", (chunk: Buffer) => this.ingest(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => this.onSocketClosed());
    if (head !== undefined && head.length > 0) queueMicrotask(() => this.ingest(head));
  }

  /** Server side: a stream the client opened (already answered with SYN_REPLY). */
  onStream(fn: (s: SpdyStream) => void): void {
    this.streamFns.push(fn);
  }

  /** Called once when the session ends (with the protocol error that ended it, if any). */
  onClose(fn: (err?: Error) => void): void {
    if (this.closed) queueMicrotask(() => fn());
    else this.closeFns.push(fn);
  }

  /** Client side: open a stream and wait for its SYN_REPLY. */
  openStream(headers: Record<string, string>, opts: { fin?: boolean } = {}): Promise<SpdyStream> {
    if (this.closed) return Promise.reject(new Error("the SPDY connection is closed"));
    const id = this.nextLocalStreamId;
    this.nextLocalStreamId += 2;
    const stream = new SpdyStream(id, decodeHeaderBlock(encodeHeaderBlock(headers)), this);
    if (opts.fin === true) stream.localEnded = true;
    this.streams.set(id, stream);
    return new Promise<SpdyStream>((resolve, reject) => {
      this.pendingOpens.set(id, { stream, resolve, reject });
      const block = this.compressor.compress(encodeHeaderBlock(headers));
      this.send(encodeSynStream(id, block, { flags: opts.fin === true ? FLAG_FIN : 0 }));
    });
  }

  /** @internal */
  send(frame: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(frame);
  }

  get saturated(): boolean {
    return saturated(this.socket);
  }

  drain(): Promise<void> {
    return drained(this.socket, this.closed);
  }

  /** Stop reading from the socket (nested; every pause needs a resume). */
  pauseInput(): void {
    if (this.pauses++ === 0) this.socket.pause();
  }

  resumeInput(): void {
    if (this.pauses > 0 && --this.pauses === 0) this.socket.resume();
  }

  /** @internal drop a stream that is finished both ways */
  forgetIfDone(s: SpdyStream): void {
    if (s.localEnded && s.remoteEnded) this.streams.delete(s.id);
  }

  /** Send GOAWAY: no new streams are accepted. */
  goAway(status: number = GoAwayStatus.OK): void {
    if (this.sentGoAway) return;
    this.sentGoAway = true;
    this.send(encodeGoAway(this.lastRemoteStreamId, status));
  }

  /** GOAWAY, then close our side of the socket once everything queued is written. */
  close(): void {
    this.goAway();
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
    this.onSocketClosed();
  }

  private ingest(chunk: Uint8Array): void {
    if (this.closed) return;
    try {
      this.inbox.push(...this.reader.push(chunk));
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    void this.pump();
  }

  /** Handles frames in arrival order; header blocks make it wait for the inflater. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && !this.closed) {
        const frame = this.inbox.shift()!;
        await this.handle(frame);
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.pumping = false;
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.goAway(GoAwayStatus.PROTOCOL_ERROR);
    this.socket.end();
    this.onSocketClosed(err);
    this.socket.destroy();
  }

  private async handle(f: Frame): Promise<void> {
    switch (f.type) {
      case "data": {
        const s = this.streams.get(f.streamId);
        if (s === undefined) {
          // Data for a stream that never was: an error; for a finished one: late, dropped.
          if (!this.knownId(f.streamId)) this.send(encodeRstStream(f.streamId, RstStatus.INVALID_STREAM));
          return;
        }
        s.received(f.data);
        if ((f.flags & FLAG_FIN) !== 0) s.remoteFinished(false);
        return;
      }
      case "syn_stream": {
        const headers = decodeHeaderBlock(await this.decompressor.decompress(f.headerBlock));
        if (this.role !== "server" || f.streamId % 2 !== 1 || f.streamId <= this.lastRemoteStreamId) {
          this.send(encodeRstStream(f.streamId, RstStatus.PROTOCOL_ERROR));
          return;
        }
        this.lastRemoteStreamId = f.streamId;
        if (this.sentGoAway) {
          this.send(encodeRstStream(f.streamId, RstStatus.REFUSED_STREAM));
          return;
        }
        const s = new SpdyStream(f.streamId, headers, this);
        this.streams.set(f.streamId, s);
        this.send(encodeSynReply(f.streamId, this.compressor.compress(encodeHeaderBlock({}))));
        if ((f.flags & FLAG_UNIDIRECTIONAL) !== 0) s.localEnded = true;
        if ((f.flags & FLAG_FIN) !== 0) s.remoteFinished(false);
        for (const fn of this.streamFns) fn(s);
        return;
      }
      case "syn_reply": {
        await this.decompressor.decompress(f.headerBlock);
        const p = this.pendingOpens.get(f.streamId);
        if (p === undefined) return;
        this.pendingOpens.delete(f.streamId);
        if ((f.flags & FLAG_FIN) !== 0) p.stream.remoteFinished(false);
        p.resolve(p.stream);
        return;
      }
      case "headers":
        await this.decompressor.decompress(f.headerBlock); // keeps the zlib context in step
        return;
      case "rst_stream": {
        const p = this.pendingOpens.get(f.streamId);
        if (p !== undefined) {
          this.pendingOpens.delete(f.streamId);
          p.reject(new Error(`the peer refused stream ${f.streamId} (RST_STREAM status ${f.status})`));
        }
        this.streams.get(f.streamId)?.remoteFinished(true);
        this.streams.delete(f.streamId);
        return;
      }
      case "ping":
        // Echo the peer's pings (odd ids come from clients, even ones from servers).
        if (f.id % 2 !== (this.role === "client" ? 1 : 0)) this.send(encodePing(f.id));
        return;
      case "goaway":
        this.peerGoneAway = true;
        return;
      case "settings":
      case "window_update":
      case "unknown":
        return;
    }
  }

  private knownId(id: number): boolean {
    const remote = this.role === "server" ? id % 2 === 1 : id % 2 === 0;
    return remote ? id <= this.lastRemoteStreamId : id < this.nextLocalStreamId;
  }

  private onSocketClosed(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pendingOpens.values()) p.reject(err ?? new Error("the SPDY connection closed"));
    this.pendingOpens.clear();
    for (const s of [...this.streams.values()]) s.remoteFinished(true);
    this.streams.clear();
    this.decompressor.close();
    for (const fn of this.closeFns.splice(0)) fn(err);
  }
}

export { SpdyProtocolError };
