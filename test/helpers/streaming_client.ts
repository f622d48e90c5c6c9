// A minimal streaming client for tests, written apart from src/stream so that it checks
// the server rather than agreeing with it: the HTTP upgrade by hand, SPDY/3.1 frames
// with headers compressed by a real zlib deflater (as Go's framer does), and
// WebSocket frames masked as a browser or kubectl would send them.
import { randomBytes, createHash } from "node:crypto";
import net from "node:net";
import zlib from "node:zlib";
import { SPDY3_DICTIONARY } from "../../src/stream/spdy_dictionary.ts";

export interface UpgradeResult {
  socket: net.Socket;
  status: number;
  headers: Record<string, string>;
  /** Bytes after the response head (frames that came with it). */
  rest: Buffer;
  body: string;
}

/** Send an upgrade request and read the response head. */
export async function upgradeRequest(url: string, headers: Record<string, string>, method = "POST"): Promise<UpgradeResult> {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const lines = [`${method} ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.write(lines.join("\r\n") + "\r\n\r\n");
  let buf = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.off("end", onEnd);
      const head = buf.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(head[0]!.split(" ")[1]);
      const hs: Record<string, string> = {};
      for (const l of head.slice(1)) {
        const i = l.indexOf(":");
        const k = l.slice(0, i).trim().toLowerCase();
        hs[k] = hs[k] ? `${hs[k]}, ${l.slice(i + 1).trim()}` : l.slice(i + 1).trim();
      }
      const rest = buf.subarray(end + 4);
      if (status === 101) return resolve({ socket, status, headers: hs, rest, body: "" });
      // An error response: read the body to the end.
      let body = rest;
      socket.on("data", (d: Buffer) => (body = Buffer.concat([body, d])));
      socket.once("close", () => resolve({ socket, status, headers: hs, rest: Buffer.alloc(0), body: body.toString("utf8") }));
    };
    const onEnd = () => reject(new Error(`connection closed before a response: ${buf.toString("latin1")}`));
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", reject);
  });
}

// ---------------- SPDY ----------------

interface StreamState {
  data: Buffer[];
  ended: boolean;
  reset: boolean;
  replied: boolean;
  waiters: Array<() => void>;
}

export class SpdyTestClient {
  private readonly deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY });
  private deflated: Buffer[] = [];
  private compressChain: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private buf = Buffer.alloc(0);
  private readonly streams = new Map<number, StreamState>();
  goAway = false;
  closed = false;
  private closeWaiters: Array<() => void> = [];

  constructor(readonly socket: net.Socket, rest: Buffer) {
    this.deflate.on("data", (c: Buffer) => this.deflated.push(c));
    socket.on("data", (c: Buffer) => this.ingest(c));
    socket.on("close", () => {
      this.closed = true;
      for (const s of this.streams.values()) this.markEnded(s);
      for (const w of this.closeWaiters.splice(0)) w();
    });
    socket.on("error", () => undefined);
    if (rest.length > 0) this.ingest(rest);
  }

  static async connect(url: string, protocols: string[]): Promise<{ client: SpdyTestClient; protocol: string }> {
    const r = await upgradeRequest(url, { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": protocols.join(", "), "Content-Length": "0" });
    if (r.status !== 101) throw new Error(`upgrade refused: ${r.status} ${r.body}`);
    return { client: new SpdyTestClient(r.socket, r.rest), protocol: r.headers["x-stream-protocol-version"] ?? "" };
  }

  private compress(block: Buffer): Promise<Buffer> {
    const run = this.compressChain.then(
      () =>
        new Promise<Buffer>((resolve) => {
          this.deflated = [];
          this.deflate.write(block);
          this.deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(this.deflated)));
        }),
    );
    this.compressChain = run;
    return run;
  }

  /** Open a stream (SYN_STREAM) and wait for the server's SYN_REPLY. */
  async open(headers: Record<string, string>, fin = false): Promise<number> {
    const id = this.nextId;
    this.nextId += 2;
    const st: StreamState = { data: [], ended: false, reset: false, replied: false, waiters: [] };
    this.streams.set(id, st);
    const pairs = Object.entries(headers);
    const parts: Buffer[] = [u32(pairs.length)];
    for (const [k, v] of pairs) parts.push(u32(Buffer.byteLength(k)), Buffer.from(k), u32(Buffer.byteLength(v)), Buffer.from(v));
    const block = await this.compress(Buffer.concat(parts));
    const payload = Buffer.concat([u32(id), u32(0), Buffer.from([0, 0]), block]);
    this.socket.write(Buffer.concat([u32(0x80030001), u32(((fin ? 1 : 0) << 24) | payload.length), payload]));
    await this.until(id, () => st.replied || st.reset || st.ended);
    if (st.reset) throw new Error(`stream ${id} was reset`);
    return id;
  }

  send(id: number, data: string | Uint8Array, fin = false): void {
    const d = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
    this.socket.write(Buffer.concat([u32(id), u32(((fin ? 1 : 0) << 24) | d.length), d]));
  }

  /** Half-close our side of a stream (empty DATA with FIN). */
  finish(id: number): void {
    this.send(id, Buffer.alloc(0), true);
  }

  private markEnded(st: StreamState): void {
    st.ended = true;
    for (const w of st.waiters.splice(0)) w();
  }

  text(id: number): string {
    return Buffer.concat(this.streams.get(id)?.data ?? []).toString("utf8");
  }

  isEnded(id: number): boolean {
    return this.streams.get(id)?.ended ?? true;
  }

  /** Wait until `pred` holds for the stream (checked whenever it receives something). */
  until(id: number, pred: () => boolean, timeoutMs = 20_000): Promise<void> {
    const st = this.streams.get(id);
    if (!st) return Promise.reject(new Error(`no stream ${id}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream ${id}: condition not met within ${timeoutMs} ms; got ${JSON.stringify(this.text(id))}`)), timeoutMs);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else if (st.ended && !pred()) {
          clearTimeout(timer);
          reject(new Error(`stream ${id} ended; got ${JSON.stringify(this.text(id))}`));
        } else st.waiters.push(check);
      };
      check();
    });
  }

  waitEnd(id: number, timeoutMs = 20_000): Promise<string> {
    const st = this.streams.get(id)!;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream ${id} did not end within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        if (st.ended) {
          clearTimeout(timer);
          resolve(this.text(id));
        } else st.waiters.push(check);
      };
      check();
    });
  }

  waitClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
    this.deflate.destroy();
  }

  private ingest(c: Buffer): void {
    this.buf = Buffer.concat([this.buf, c]);
    while (this.buf.length >= 8) {
      const w1 = this.buf.readUInt32BE(0);
      const w2 = this.buf.readUInt32BE(4);
      const len = w2 & 0xffffff;
      if (this.buf.length < 8 + len) break;
      const payload = this.buf.subarray(8, 8 + len);
      const flags = w2 >>> 24;
      this.buf = this.buf.subarray(8 + len);
      if ((w1 & 0x80000000) === 0) {
        const st = this.streams.get(w1 & 0x7fffffff);
        if (!st) continue;
        if (payload.length > 0) st.data.push(Buffer.from(payload));
        if (flags & 1) st.ended = true;
        for (const w of st.waiters.splice(0)) w();
        continue;
      }
      const type = w1 & 0xffff;
      const id = payload.length >= 4 ? payload.readUInt32BE(0) & 0x7fffffff : 0;
      const st = this.streams.get(id);
      if (type === 2 && st) st.replied = true; // SYN_REPLY (its header block is not needed)
      if (type === 3 && st) {
        st.reset = true;
        st.ended = true;
      }
      if (type === 7) this.goAway = true;
      if (st) for (const w of st.waiters.splice(0)) w();
    }
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export interface CommandOpts {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
}

export interface Status {
  status: string;
  reason?: string;
  message?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

/** An exec or attach session as a test drives it. */
export interface CommandSession {
  protocol: string;
  write(data: string): void;
  closeStdin(): void;
  resize(width: number, height: number): void;
  stdout(): string;
  stderr(): string;
  /** Wait until stdout contains `text`. */
  waitStdout(text: string, timeoutMs?: number): Promise<void>;
  /** Wait for the end: every output stream closed and the status read. */
  done(timeoutMs?: number): Promise<{ stdout: string; stderr: string; status: Status | undefined; errorText: string }>;
  close(): void;
}

/** Exec/attach over SPDY, opening streams as kubectl does (error first). */
export async function spdyCommand(url: string, o: CommandOpts, protocols = ["v4.channel.k8s.io"]): Promise<CommandSession> {
  const { client, protocol } = await SpdyTestClient.connect(url, protocols);
  const ids: Record<string, number> = {};
  ids.error = await client.open({ streamtype: "error" });
  if (o.stdin) ids.stdin = await client.open({ streamtype: "stdin" });
  if (o.stdout) ids.stdout = await client.open({ streamtype: "stdout" });
  if (o.stderr) ids.stderr = await client.open({ streamtype: "stderr" });
  if (o.tty && protocol !== "v2.channel.k8s.io") ids.resize = await client.open({ streamtype: "resize" });
  const text = (k: string) => (ids[k] === undefined ? "" : client.text(ids[k]!));
  return {
    protocol,
    write: (d) => client.send(ids.stdin!, d),
    closeStdin: () => client.finish(ids.stdin!),
    resize: (w, h) => client.send(ids.resize!, JSON.stringify({ Width: w, Height: h })),
    stdout: () => text("stdout"),
    stderr: () => text("stderr"),
    waitStdout: (t, ms) => client.until(ids.stdout!, () => client.text(ids.stdout!).includes(t), ms),
    async done(ms = 30_000) {
      for (const k of ["stdout", "stderr", "error"]) if (ids[k] !== undefined) await client.waitEnd(ids[k]!, ms);
      const errorText = text("error");
      let status: Status | undefined;
      if (protocol === "v4.channel.k8s.io") status = JSON.parse(errorText) as Status;
      client.close();
      return { stdout: text("stdout"), stderr: text("stderr"), status, errorText };
    },
    close: () => client.close(),
  };
}

// ---------------- WebSocket ----------------

export async function wsCommand(url: string, o: CommandOpts, protocols = ["v5.channel.k8s.io"]): Promise<CommandSession> {
  const key = randomBytes(16).toString("base64");
  const u = url.replace(/^http/, "http");
  const r = await upgradeRequest(u, { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key, "Sec-WebSocket-Protocol": protocols.join(", ") }, "GET");
  if (r.status !== 101) throw new Error(`websocket upgrade refused: ${r.status} ${r.body}`);
  const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  if (r.headers["sec-websocket-accept"] !== accept) throw new Error("wrong Sec-WebSocket-Accept");
  const sock = r.socket;
  const out: Record<number, Buffer[]> = { 1: [], 2: [], 3: [] };
  let closed = false;
  let waiters: Array<() => void> = [];
  let buf = Buffer.alloc(0);
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  const sendFrame = (opcode: number, payload: Buffer) => {
    const mask = randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65536 ? Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 126]), Buffer.from([len >> 8, len & 255])]) : (() => {
      const b = Buffer.alloc(10);
      b[0] = 0x80 | opcode;
      b[1] = 0x80 | 127;
      b.writeBigUInt64BE(BigInt(len), 2);
      return b;
    })();
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
    sock.write(Buffer.concat([head, mask, body]));
  };
  const ingest = (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if ((buf[1]! & 0x80) !== 0) throw new Error("server frames must not be masked");
      if (buf.length < off + len) return;
      const opcode = buf[0]! & 0x0f;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (opcode === 2 && payload.length > 0) out[payload[0]!]?.push(Buffer.from(payload.subarray(1)));
      if (opcode === 8) {
        sendFrame(8, Buffer.from(payload.subarray(0, 2)));
        closed = true;
      }
      wake();
    }
  };
  sock.on("data", ingest);
  sock.on("close", () => {
    closed = true;
    wake();
  });
  if (r.rest.length > 0) ingest(r.rest);
  const text = (ch: number) => Buffer.concat(out[ch] ?? []).toString("utf8");
  const until = (pred: () => boolean, ms = 20_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`websocket: condition not met within ${ms} ms; stdout ${JSON.stringify(text(1))}`)), ms);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else if (closed) {
          clearTimeout(timer);
          reject(new Error(`websocket closed; stdout ${JSON.stringify(text(1))}`));
        } else waiters.push(check);
      };
      check();
    });
  const protocol = r.headers["sec-websocket-protocol"] ?? "";
  return {
    protocol,
    write: (d) => sendFrame(2, Buffer.concat([Buffer.from([0]), Buffer.from(d)])),
    closeStdin: () => sendFrame(2, Buffer.from([255, 0])),
    resize: (w, h) => sendFrame(2, Buffer.concat([Buffer.from([4]), Buffer.from(JSON.stringify({ Width: w, Height: h }))])),
    stdout: () => text(1),
    stderr: () => text(2),
    waitStdout: (t, ms) => until(() => text(1).includes(t), ms),
    async done(ms = 30_000) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("websocket did not close")), ms);
        const check = () => (closed ? (clearTimeout(timer), resolve()) : waiters.push(check));
        check();
      });
      sock.destroy();
      const errorText = text(3);
      return { stdout: text(1), stderr: text(2), status: errorText ? (JSON.parse(errorText) as Status) : undefined, errorText };
    },
    close: () => sock.destroy(),
  };
}

// ---------------- port-forward ----------------

export interface PortForwardSession {
  /** One forwarded connection: send `payload`, half-close, read until the server ends the data stream. */
  request(port: number, requestId: string, payload: string): Promise<{ data: string; error: string }>;
  close(): void;
}

export async function spdyPortForward(url: string): Promise<PortForwardSession> {
  const { client, protocol } = await SpdyTestClient.connect(url, ["portforward.k8s.io"]);
  if (protocol !== "portforward.k8s.io") throw new Error(`negotiated ${protocol}`);
  return {
    async request(port, requestId, payload) {
      // As kubectl: the error stream first (closed for writing at once), then data.
      const err = await client.open({ streamtype: "error", port: String(port), requestid: requestId });
      client.finish(err);
      const data = await client.open({ streamtype: "data", port: String(port), requestid: requestId });
      client.send(data, payload);
      client.finish(data);
      const [d, e] = await Promise.all([client.waitEnd(data), client.waitEnd(err)]);
      return { data: d, error: e };
    },
    close: () => client.close(),
  };
}
