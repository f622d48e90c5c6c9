// The server side of one HTTP/2 connection (RFC 9113), as much of it as a gRPC
// server needs: requests with bodies, responses with trailers, flow control both
// ways, PING, SETTINGS, RST_STREAM and GOAWAY. No server push, no priorities.
//
// Why our own: Bun's HTTP/2 server resets requests whose `:authority` is the socket
// path, empty or missing — what most gRPC clients send over a unix socket (see
// docs/bun-h2-authority.md) — and its JS-stream path costs more per call than the
// whole of this. Any `:authority` is accepted here: a unix socket has no host.
//
// The connection is fed bytes (`receive`) and writes through a Transport, so tests
// drive it without a socket. Outgoing frames of one turn of the event loop leave in
// one write.
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField } from "./hpack.ts";
import {
  DEFAULT_MAX_FRAME, DEFAULT_WINDOW, ErrorCode, Flag, frame, FRAME_HEADER_LENGTH, FrameType, MAX_FRAME_LIMIT, MAX_WINDOW,
  PREFACE, Setting, uint32Payload, writeFrameHeader,
} from "./frames.ts";

export interface Transport {
  write(data: Uint8Array): void;
  /** Close after what was written is sent. */
  end(): void;
}

/** What the application does with each request. */
export interface StreamListener {
  /** A chunk of the request body (a view: copy it to keep it past the call). */
  onData(chunk: Uint8Array): void;
  /** The client ended its side. */
  onEnd(): void;
  /** The stream ended early: the client reset it or the connection closed. */
  onAbort(reason: string): void;
}

export interface ConnectionOptions {
  /** Called once a request's headers are complete; returns who receives its body. */
  onRequest(stream: H2Stream): StreamListener;
  /** Protocol errors of the peer, for the log. */
  onError?(message: string): void;
}

/** Largest header block accepted (a gRPC request's is a few hundred octets). */
const MAX_HEADER_BLOCK = 1 << 20;
/** CONTINUATIONs accepted for one block: bounds a flood of empty ones. */
const MAX_CONTINUATIONS = 256;
/**
 * What we let a client send ahead, per stream and for the connection: the CRI's
 * largest request (16 MiB) flows without waiting for a WINDOW_UPDATE.
 */
const RECEIVE_WINDOW = 16 * 1024 * 1024 + 1024;
/**
 * Response octets a stream queues, past the client's window, before write() says stop.
 * About what grpc-js's streams held (16 messages) for the kubelet's event sizes: a client
 * reading through 64 KiB windows must not look stalled while a few big events drain.
 */
const QUEUE_HIGH_WATER = 1024 * 1024;

/** Our SETTINGS, sent first on every connection. */
const SERVER_PREFACE = Buffer.concat([
  frame(FrameType.SETTINGS, 0, 0, settingsPayload([[Setting.ENABLE_PUSH, 0], [Setting.INITIAL_WINDOW_SIZE, RECEIVE_WINDOW]])),
  frame(FrameType.WINDOW_UPDATE, 0, 0, uint32Payload(RECEIVE_WINDOW - DEFAULT_WINDOW)),
]);
const SETTINGS_ACK = frame(FrameType.SETTINGS, Flag.ACK, 0);
const EMPTY_INPUT = Buffer.alloc(0);

class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export class H2Stream {
  /** Request headers, names lower-case; repeated names joined with ", ". */
  readonly headers = new Map<string, string>();
  /** Set by the connection once it has the listener. */
  listener: StreamListener | undefined;
  remoteEnded = false;
  localEnded = false;
  /** What the client lets us send on this stream. */
  sendWindow: number;
  /** DATA waiting for window, then the trailers that end the stream. */
  readonly queue: Uint8Array[] = [];
  queuedBytes = 0;
  queuedTrailers: Uint8Array | undefined;
  /** Bytes received since the last stream WINDOW_UPDATE. */
  unacked = 0;

  constructor(readonly id: number, private readonly conn: H2Connection, sendWindow: number) {
    this.sendWindow = sendWindow;
  }

  /** Response headers (a complete HPACK block); endStream for a headers-only response. */
  respond(block: Uint8Array, endStream = false): void {
    this.conn.sendHeaders(this, block, endStream);
  }

  /**
   * Body bytes; queued while the client's window is closed. False when more than
   * QUEUE_HIGH_WATER octets were still waiting from earlier writes: the client is
   * not reading. (One large message alone does not count: it needs a few windows.)
   */
  write(data: Uint8Array): boolean {
    if (this.localEnded) return false;
    const waiting = this.queuedBytes;
    if (data.length > 0) {
      this.queue.push(data);
      this.queuedBytes += data.length;
      this.conn.pump(this);
    }
    return waiting <= QUEUE_HIGH_WATER;
  }

  /** End the response with trailers, after any queued DATA. */
  end(trailerBlock: Uint8Array): void {
    if (this.localEnded || this.queuedTrailers) return;
    this.queuedTrailers = trailerBlock;
    this.conn.pump(this);
  }

  reset(code: number): void {
    this.conn.resetStream(this, code);
  }
}

export class H2Connection {
  private input: Buffer = EMPTY_INPUT;
  private prefaceSeen = false;
  private settingsSeen = false;
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, H2Stream>();
  private lastStreamId = 0;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  private peerInitialWindow = DEFAULT_WINDOW;
  private connSendWindow = DEFAULT_WINDOW;
  private connUnacked = 0;
  /** A header block being assembled from HEADERS + CONTINUATION frames. */
  private block: { streamId: number; endStream: boolean; parts: Uint8Array[]; length: number; frames: number } | undefined;
  private out: Uint8Array[] = [];
  private flushScheduled = false;
  private goingAway = false;
  /** We will read nothing more (GOAWAY sent and streams done, or a connection error). */
  private closed = false;
  /** The transport is gone: nothing more is written. */
  private dead = false;
  /** Streams waiting for connection window. */
  private readonly blocked = new Set<H2Stream>();

  constructor(private readonly transport: Transport, private readonly options: ConnectionOptions) {
    this.send(SERVER_PREFACE);
  }

  /** Open streams (what tests observe of a connection). */
  get activeStreams(): number {
    return this.streams.size;
  }

  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    this.input = this.input.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.input, chunk]);
    try {
      this.parse();
    } catch (e) {
      if (!(e instanceof ConnectionError)) throw e;
      this.options.onError?.(e.message);
      this.goAway(e.code, e.message);
    }
  }

  /** The transport closed: every open stream is aborted. */
  transportClosed(): void {
    this.dead = true;
    this.closed = true;
    const open = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    for (const s of open) s.listener?.onAbort("the connection closed");
  }

  /** Graceful shutdown: no new streams; the connection ends once the open ones do. */
  shutdown(): void {
    if (this.goingAway || this.closed) return;
    this.goingAway = true;
    this.send(frame(FrameType.GOAWAY, 0, 0, goAwayPayload(this.lastStreamId, ErrorCode.NO_ERROR, "")));
    this.endIfIdle();
  }

  private parse(): void {
    const buf = this.input;
    let pos = 0;
    if (!this.prefaceSeen) {
      if (buf.length < PREFACE.length) {
        if (!PREFACE.subarray(0, buf.length).equals(buf)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface");
        return;
      }
      if (!PREFACE.equals(buf.subarray(0, PREFACE.length))) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface");
      this.prefaceSeen = true;
      pos = PREFACE.length;
    }
    while (buf.length - pos >= FRAME_HEADER_LENGTH && !this.closed) {
      const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (length > DEFAULT_MAX_FRAME) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `a frame of ${length} octets exceeds the ${DEFAULT_MAX_FRAME} allowed`);
      if (buf.length - pos < FRAME_HEADER_LENGTH + length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const streamId = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      const payload = buf.subarray(pos + FRAME_HEADER_LENGTH, pos + FRAME_HEADER_LENGTH + length);
      pos += FRAME_HEADER_LENGTH + length;
      this.onFrame(type, flags, streamId, payload);
    }
    // A partial frame is kept as a copy: the transport may reuse the chunk's memory.
    this.input = pos === buf.length ? EMPTY_INPUT : Buffer.from(buf.subarray(pos));
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsSeen && type !== FrameType.SETTINGS) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "the first frame must be SETTINGS");
    if (this.block && type !== FrameType.CONTINUATION) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted by another frame");
    switch (type) {
      case FrameType.DATA:
        return this.onData(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FrameType.RST_STREAM:
        return this.onReset(streamId, payload);
      case FrameType.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FrameType.PING:
        if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream");
        if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING payload is not 8 octets");
        if (!(flags & Flag.ACK)) this.send(frame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        this.goingAway = true; // the client opens no more streams; finish the open ones
        this.endIfIdle();
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      case FrameType.PRIORITY:
        if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0");
        return;
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a client sent PUSH_PROMISE");
      default:
        return; // unknown frame types are ignored (RFC 9113 4.1)
    }
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 octets");
    this.settingsSeen = true;
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === Setting.ENABLE_PUSH && value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1");
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE above 2^31-1");
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) s.sendWindow += delta;
      }
      if (id === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > MAX_FRAME_LIMIT) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} is out of range`);
        this.peerMaxFrame = value;
      }
      // HEADER_TABLE_SIZE: our encoder never indexes, so any size suits it.
    }
    this.send(SETTINGS_ACK);
    for (const s of this.streams.values()) this.pump(s);
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0 || streamId % 2 === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}`);
    let body = this.unpad(flags, payload);
    if (flags & Flag.PRIORITY) {
      if (body.length < 5) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority");
      body = body.subarray(5);
    }
    const existing = this.streams.get(streamId);
    if (!existing && streamId <= this.lastStreamId) throw new ConnectionError(ErrorCode.STREAM_CLOSED, `HEADERS on closed stream ${streamId}`);
    if (existing && !(flags & Flag.END_STREAM)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `trailers without END_STREAM on stream ${streamId}`);
    this.block = { streamId, endStream: (flags & Flag.END_STREAM) !== 0, parts: [body], length: body.length, frames: 1 };
    if (flags & Flag.END_HEADERS) this.headerBlockDone();
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.block;
    if (!block || block.streamId !== streamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without a header block in progress");
    block.parts.push(payload);
    block.length += payload.length;
    if (block.length > MAX_HEADER_BLOCK || ++block.frames > MAX_CONTINUATIONS) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large");
    }
    if (flags & Flag.END_HEADERS) this.headerBlockDone();
  }

  private headerBlockDone(): void {
    const block = this.block!;
    this.block = undefined;
    let fields: HeaderField[];
    try {
      fields = this.decoder.decode(block.parts.length === 1 ? block.parts[0]! : Buffer.concat(block.parts)).fields;
    } catch (e) {
      if (e instanceof HpackError) throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, `header block: ${e.message}`);
      throw e;
    }
    const existing = this.streams.get(block.streamId);
    if (existing) {
      // Trailers from the client: gRPC sends none; they only end the request.
      this.remoteEnd(existing);
      return;
    }
    this.lastStreamId = block.streamId;
    if (this.goingAway) {
      this.send(frame(FrameType.RST_STREAM, 0, block.streamId, uint32Payload(ErrorCode.REFUSED_STREAM)));
      return;
    }
    const stream = new H2Stream(block.streamId, this, this.peerInitialWindow);
    for (const f of fields) {
      const prev = stream.headers.get(f.name);
      stream.headers.set(f.name, prev === undefined ? f.value : `${prev}, ${f.value}`);
    }
    this.streams.set(stream.id, stream);
    // Known before the application answers, so an answer given at once needs no RST_STREAM.
    stream.remoteEnded = block.endStream;
    const listener = this.options.onRequest(stream);
    stream.listener = listener;
    if (block.endStream) listener.onEnd();
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    // Flow control counts the whole payload, padding included, open stream or not.
    this.connUnacked += payload.length;
    if (this.connUnacked >= RECEIVE_WINDOW / 2) {
      this.send(frame(FrameType.WINDOW_UPDATE, 0, 0, uint32Payload(this.connUnacked)));
      this.connUnacked = 0;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (streamId > this.lastStreamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      return; // a stream we already ended: its late DATA is dropped
    }
    if (stream.remoteEnded) {
      this.resetStream(stream, ErrorCode.STREAM_CLOSED);
      return;
    }
    const body = this.unpad(flags, payload);
    stream.unacked += payload.length;
    if (stream.unacked >= RECEIVE_WINDOW / 2 && !(flags & Flag.END_STREAM)) {
      this.send(frame(FrameType.WINDOW_UPDATE, 0, streamId, uint32Payload(stream.unacked)));
      stream.unacked = 0;
    }
    if (body.length > 0) stream.listener?.onData(body);
    if (flags & Flag.END_STREAM && this.streams.has(streamId)) this.remoteEnd(stream);
  }

  private onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 octets");
    const stream = this.streams.get(streamId);
    if (!stream) return;
    this.forget(stream);
    stream.localEnded = true;
    stream.listener?.onAbort(`the client reset the stream (code ${payload.readUInt32BE(0)})`);
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 octets");
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window above 2^31-1");
      for (const s of [...this.blocked]) this.pump(s);
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) return;
    if (increment === 0) return this.resetStream(stream, ErrorCode.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
    this.pump(stream);
  }

  private unpad(flags: number, payload: Buffer): Buffer {
    if (!(flags & Flag.PADDED)) return payload;
    if (payload.length < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "padded frame without its pad length");
    const pad = payload[0]!;
    if (pad >= payload.length) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame");
    return payload.subarray(1, payload.length - pad);
  }

  private remoteEnd(stream: H2Stream): void {
    stream.remoteEnded = true;
    stream.listener?.onEnd();
    if (stream.localEnded) this.forget(stream);
  }

  // --- sending ---

  sendHeaders(stream: H2Stream, block: Uint8Array, endStream: boolean): void {
    if (stream.localEnded || !this.streams.has(stream.id)) return;
    this.headerFrames(stream.id, block, endStream);
    if (endStream) this.localEnd(stream);
  }

  /** Send what the windows allow of the stream's queue, then its trailers once the queue is empty. */
  pump(stream: H2Stream): void {
    if (stream.localEnded || !this.streams.has(stream.id)) return;
    const q = stream.queue;
    while (q.length > 0) {
      const allowed = Math.min(this.connSendWindow, stream.sendWindow, this.peerMaxFrame);
      if (allowed <= 0) {
        if (this.connSendWindow <= 0) this.blocked.add(stream);
        return;
      }
      const head = q[0]!;
      const n = Math.min(allowed, head.length);
      const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + n);
      writeFrameHeader(out, 0, n, FrameType.DATA, 0, stream.id);
      out.set(n === head.length ? head : head.subarray(0, n), FRAME_HEADER_LENGTH);
      this.send(out);
      this.connSendWindow -= n;
      stream.sendWindow -= n;
      stream.queuedBytes -= n;
      if (n === head.length) q.shift();
      else q[0] = head.subarray(n);
    }
    this.blocked.delete(stream);
    if (stream.queuedTrailers) {
      this.headerFrames(stream.id, stream.queuedTrailers, true);
      stream.queuedTrailers = undefined;
      this.localEnd(stream);
    }
  }

  resetStream(stream: H2Stream, code: number): void {
    if (!this.streams.has(stream.id)) return;
    this.send(frame(FrameType.RST_STREAM, 0, stream.id, uint32Payload(code)));
    this.forget(stream);
    const wasOpen = !stream.localEnded;
    stream.localEnded = true;
    if (wasOpen && code !== ErrorCode.NO_ERROR) stream.listener?.onAbort(`the server reset the stream (code ${code})`);
  }

  private localEnd(stream: H2Stream): void {
    stream.localEnded = true;
    stream.queue.length = 0;
    stream.queuedBytes = 0;
    if (stream.remoteEnded) this.forget(stream);
    // gRPC: a server done before the client's END_STREAM resets the rest of the request.
    else this.resetStream(stream, ErrorCode.NO_ERROR);
  }

  private forget(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.endIfIdle();
  }

  private endIfIdle(): void {
    if (this.goingAway && this.streams.size === 0 && !this.closed) {
      this.closed = true;
      this.flush();
      this.transport.end();
    }
  }

  private headerFrames(streamId: number, block: Uint8Array, endStream: boolean): void {
    const max = this.peerMaxFrame;
    const first = block.subarray(0, max);
    const last = first.length === block.length;
    this.send(frame(FrameType.HEADERS, (endStream ? Flag.END_STREAM : 0) | (last ? Flag.END_HEADERS : 0), streamId, first));
    for (let at = max; at < block.length; at += max) {
      const part = block.subarray(at, at + max);
      this.send(frame(FrameType.CONTINUATION, at + max >= block.length ? Flag.END_HEADERS : 0, streamId, part));
    }
  }

  private goAway(code: number, message: string): void {
    if (this.closed) return;
    this.send(frame(FrameType.GOAWAY, 0, 0, goAwayPayload(this.lastStreamId, code, message)));
    this.flush();
    this.transport.end();
    this.transportClosed();
  }

  private send(bytes: Uint8Array): void {
    this.out.push(bytes);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.dead) return;
    const bytes = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.transport.write(bytes);
  }
}

/** Encode response headers or trailers (literals; see hpack.ts). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Uint8Array {
  return encodeLiterals(fields.map(([name, value]) => ({ name, value, sensitive: false })));
}

function settingsPayload(settings: [number, number][]): Buffer {
  const b = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, value], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(value, i * 6 + 2);
  });
  return b;
}

function goAwayPayload(lastStreamId: number, code: number, message: string): Buffer {
  const debug = Buffer.from(message.slice(0, 200), "utf8");
  const b = Buffer.allocUnsafe(8 + debug.length);
  b.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  b.writeUInt32BE(code, 4);
  debug.copy(b, 8);
  return b;
}
