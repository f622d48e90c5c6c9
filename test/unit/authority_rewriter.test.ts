// The HTTP/2 :authority rewriter (src/h2/authority_rewriter.ts): what the server's
// parser sees for every kind of client, split any way the socket splits it, and
// that malformed input turns it into a plain pipe instead of an exception.
import { describe, expect, test } from "bun:test";
import http2 from "node:http2";
import net from "node:net";
import { AuthorityRewriter, FALLBACK_AUTHORITY } from "../../src/h2/authority_rewriter.ts";
import { HpackDecoder, type HeaderField } from "../../src/h2/hpack.ts";

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY_FRAME = 0x2;
const SETTINGS = 0x4;
const PING = 0x6;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

// ---------------------------------------------------------------- helpers

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

function frame(type: number, flags: number, stream: number, payload: Uint8Array | number[] = []): Uint8Array {
  const p = Uint8Array.from(payload);
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return concat([h, p]);
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Uint8Array;
  bytes: Uint8Array;
}

/** The frames of a connection's client bytes (after the preface). */
function parseFrames(buf: Uint8Array, skipPreface = true): Frame[] {
  if (skipPreface) {
    expect(Buffer.from(buf.subarray(0, 24)).equals(Buffer.from(PREFACE))).toBe(true);
  }
  const out: Frame[] = [];
  let pos = skipPreface ? 24 : 0;
  while (pos < buf.length) {
    if (buf.length - pos < 9) throw new Error(`partial frame header at ${pos}`);
    const len = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
    const end = pos + 9 + len;
    if (end > buf.length) throw new Error(`partial frame at ${pos}`);
    const bytes = buf.subarray(pos, end);
    out.push({ type: buf[pos + 3]!, flags: buf[pos + 4]!, stream: Buffer.from(bytes).readUInt32BE(5) & 0x7fffffff, payload: bytes.subarray(9), bytes });
    pos = end;
  }
  return out;
}

interface Request {
  stream: number;
  endStream: boolean;
  fields: HeaderField[];
  sizeUpdates: number[];
  /** The frames that carried it. */
  frames: Frame[];
}

/** What the server sees: header blocks decoded in order by one fresh decoder, and the other frames. */
function serverView(out: Uint8Array): { requests: Request[]; others: Frame[]; decoder: HpackDecoder } {
  const decoder = new HpackDecoder();
  const requests: Request[] = [];
  const others: Frame[] = [];
  let open: { first: Frame; frames: Frame[]; fragments: Uint8Array[] } | undefined;
  for (const f of parseFrames(out)) {
    if (f.type === HEADERS) {
      expect(open).toBeUndefined();
      expect(f.flags & PADDED).toBe(0); // padding never reaches the server
      const fragment = f.flags & PRIORITY ? f.payload.subarray(5) : f.payload;
      open = { first: f, frames: [f], fragments: [fragment] };
    } else if (f.type === CONTINUATION) {
      expect(open?.first.stream).toBe(f.stream);
      open!.frames.push(f);
      open!.fragments.push(f.payload);
    } else {
      expect(open).toBeUndefined();
      others.push(f);
      continue;
    }
    const last = open!.frames[open!.frames.length - 1]!;
    if (last.flags & END_HEADERS) {
      for (const g of open!.frames) expect(g.payload.length).toBeLessThanOrEqual(16384);
      for (const g of open!.frames.slice(0, -1)) expect(g.flags & END_HEADERS).toBe(0);
      const { fields, sizeUpdates } = decoder.decode(concat(open!.fragments));
      requests.push({ stream: open!.first.stream, endStream: (open!.first.flags & END_STREAM) !== 0, fields, sizeUpdates, frames: open!.frames });
      open = undefined;
    }
  }
  expect(open).toBeUndefined();
  return { requests, others, decoder };
}

/** Feed `input` to a new rewriter in the given chunk sizes (cycled); everything it wrote. */
function rewrite(input: Uint8Array, chunks: number[] = [input.length || 1]): { out: Uint8Array; rw: AuthorityRewriter } {
  const rw = new AuthorityRewriter();
  const parts: Uint8Array[] = [];
  for (let pos = 0, i = 0; pos < input.length; i++) {
    const n = Math.max(1, chunks[i % chunks.length]!);
    for (const p of rw.push(input.subarray(pos, pos + n))) parts.push(p);
    pos += n;
  }
  return { out: concat(parts), rw };
}

/**
 * A small HPACK encoder for the client side: static matches as indexes, other fields
 * as literals with incremental indexing (then indexes once in the dynamic table),
 * without indexing, or never indexed. Raw strings (Huffman comes from real clients below).
 */
type Mode = "index" | "plain" | "never";
const STATIC: [string, string][] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"], [":scheme", "http"], [":scheme", "https"],
  [":status", "200"], [":status", "204"], [":status", "206"], [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"],
  ["accept-charset", ""], ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""], ["content-disposition", ""],
  ["content-encoding", ""], ["content-language", ""], ["content-length", ""], ["content-location", ""], ["content-range", ""], ["content-type", ""],
];
class ClientEncoder {
  table: [string, string][] = [];
  size = 0;
  maxSize = 4096;
  /** Indexed references written so far into the dynamic table (to prove the test uses it). */
  dynamicHits = 0;

  encode(fields: [string, string, Mode?][], sizeUpdate?: number): Uint8Array {
    const out: number[] = [];
    if (sizeUpdate !== undefined) {
      int(out, 0x20, 5, sizeUpdate);
      this.maxSize = sizeUpdate;
      this.evict();
    }
    for (const [name, value, mode = "index"] of fields) {
      const s = STATIC.findIndex(([n, v]) => n === name && v === value);
      const d = this.table.findIndex(([n, v]) => n === name && v === value);
      if (mode === "index" && s >= 0) {
        int(out, 0x80, 7, s + 1);
        continue;
      }
      if (mode === "index" && d >= 0) {
        int(out, 0x80, 7, STATIC_LENGTH + d + 1);
        this.dynamicHits++;
        continue;
      }
      const nameIndex = STATIC.findIndex(([n]) => n === name) + 1;
      if (mode === "index") int(out, 0x40, 6, nameIndex);
      else int(out, mode === "never" ? 0x10 : 0x00, 4, nameIndex);
      if (nameIndex === 0) str(out, name);
      str(out, value);
      if (mode === "index") {
        this.table.unshift([name, value]);
        this.size += name.length + value.length + 32;
        this.evict();
      }
    }
    return Uint8Array.from(out);
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}
const STATIC_LENGTH = 61;
function int(out: number[], flags: number, prefix: number, v: number): void {
  const max = (1 << prefix) - 1;
  if (v < max) return void out.push(flags | v);
  out.push(flags | max);
  v -= max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}
function str(out: number[], s: string): void {
  int(out, 0, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
}

/** A HEADERS frame, then CONTINUATIONs, carrying `block` split at the given sizes. */
function headerFrames(stream: number, block: Uint8Array, opts: { endStream?: boolean; split?: readonly number[]; pad?: number; priority?: readonly number[] } = {}): Uint8Array {
  const cuts = opts.split ?? [];
  const pieces: Uint8Array[] = [];
  let pos = 0;
  for (const c of cuts) {
    pieces.push(block.subarray(pos, Math.min(block.length, pos + c)));
    pos = Math.min(block.length, pos + c);
  }
  pieces.push(block.subarray(pos));
  const frames: Uint8Array[] = [];
  pieces.forEach((p, i) => {
    const last = i === pieces.length - 1;
    if (i === 0) {
      let flags = (opts.endStream ? END_STREAM : 0) | (last ? END_HEADERS : 0);
      const payload: number[] = [];
      if (opts.pad !== undefined) {
        flags |= PADDED;
        payload.push(opts.pad);
      }
      if (opts.priority) {
        flags |= PRIORITY;
        payload.push(...opts.priority);
      }
      payload.push(...p);
      if (opts.pad !== undefined) payload.push(...new Array<number>(opts.pad).fill(0));
      frames.push(frame(HEADERS, flags, stream, payload));
    } else {
      frames.push(frame(CONTINUATION, last ? END_HEADERS : 0, stream, p));
    }
  });
  return concat(frames);
}

const settingsFrame = frame(SETTINGS, 0, 0, [0, 2, 0, 0, 0, 0]);
const pingFrame = frame(PING, 0, 0, [1, 2, 3, 4, 5, 6, 7, 8]);
const settingsAck = frame(SETTINGS, 1, 0);

function grpcRequest(authority: string | undefined, path = "/runtime.v1.RuntimeService/Version", extra: [string, string, Mode?][] = []): [string, string, Mode?][] {
  const f: [string, string, Mode?][] = [[":method", "POST"], [":scheme", "http"], [":path", path]];
  if (authority !== undefined) f.push([":authority", authority]);
  f.push(["content-type", "application/grpc"], ["te", "trailers"], ["user-agent", "grpc-go/1.33.0"], ...extra);
  return f;
}

const asPairs = (fields: HeaderField[]) => fields.map((f) => [f.name, f.value]);
const withoutAuthority = (fields: [string, string, Mode?][]) => fields.filter(([n]) => n !== ":authority").map(([n, v]) => [n, v]);

// ---------------------------------------------------------------- tests

describe("which authorities are replaced", () => {
  const cases: [string, string | undefined, string][] = [
    ["a socket path (grpc-go dialing a bare path)", "/run/crib/crib.sock", FALLBACK_AUTHORITY],
    ["an empty value", "", FALLBACK_AUTHORITY],
    ["no :authority at all", undefined, FALLBACK_AUTHORITY],
    ["unix:/path", "unix:/run/crib/crib.sock", FALLBACK_AUTHORITY],
    ["unix:///path", "unix:///run/crib/crib.sock", FALLBACK_AUTHORITY],
    ["a space", "local host", FALLBACK_AUTHORITY],
    ["localhost (kept)", "localhost", "localhost"],
    ["host:port (kept)", "crib.example:10010", "crib.example:10010"],
    ["[IPv6]:port (kept)", "[::1]:8080", "[::1]:8080"],
    ["a percent-encoded path (kept)", "%2Frun%2Fcrib%2Fcrib.sock", "%2Frun%2Fcrib%2Fcrib.sock"],
  ];
  for (const [what, authority, expected] of cases) {
    test(what, () => {
      const enc = new ClientEncoder();
      const sent = grpcRequest(authority);
      const input = concat([PREFACE, settingsFrame, headerFrames(1, enc.encode(sent))]);
      const { out, rw } = rewrite(input);
      expect(rw.abandoned).toBe(false);
      const [req] = serverView(out).requests;
      const got = asPairs(req!.fields);
      expect(got.filter(([n]) => n === ":authority")).toEqual([[":authority", expected]]);
      if (authority === undefined) expect(got[0]).toEqual([":authority", FALLBACK_AUTHORITY]); // pseudo-headers first
      expect(got.filter(([n]) => n !== ":authority")).toEqual(withoutAuthority(sent));
      expect(rw.rewritten).toBe(expected === authority ? 0 : 1);
    });
  }
});

test("trailers (no :method) are left without an :authority, END_STREAM kept", () => {
  const enc = new ClientEncoder();
  const input = concat([
    PREFACE,
    headerFrames(1, enc.encode(grpcRequest("/x.sock"))),
    frame(DATA, 0, 1, [0, 0, 0, 0, 0]),
    headerFrames(1, enc.encode([["x-trailer", "v"], ["grpc-status", "0", "plain"]]), { endStream: true }),
  ]);
  const { out, rw } = rewrite(input);
  const { requests, others } = serverView(out);
  expect(requests.length).toBe(2);
  expect(asPairs(requests[1]!.fields)).toEqual([["x-trailer", "v"], ["grpc-status", "0"]]);
  expect(requests[1]!.endStream).toBe(true);
  expect(requests[0]!.endStream).toBe(false);
  expect(rw.rewritten).toBe(1);
  expect(Buffer.from(others[0]!.bytes).equals(Buffer.from(frame(DATA, 0, 1, [0, 0, 0, 0, 0])))).toBe(true);
});

describe("a header block spread over CONTINUATION frames", () => {
  const enc = new ClientEncoder();
  const sent = grpcRequest("/run/crib/crib.sock", "/runtime.v1.RuntimeService/Version", [["x-long", "y".repeat(300)]]);
  const block = enc.encode(sent);
  const input = concat([PREFACE, settingsFrame, headerFrames(3, block, { split: [1, 5, 40, 0, 100], endStream: true }), pingFrame]);
  const check = (out: Uint8Array) => {
    const { requests, others } = serverView(out);
    expect(requests.length).toBe(1);
    expect(requests[0]!.stream).toBe(3);
    expect(requests[0]!.endStream).toBe(true);
    expect(requests[0]!.frames.length).toBe(1); // re-encoded in one HEADERS frame
    expect(asPairs(requests[0]!.fields)).toEqual(sent.map(([n, v]) => [n, n === ":authority" ? FALLBACK_AUTHORITY : v]));
    expect(others.map((f) => Buffer.from(f.bytes).toString("hex"))).toEqual([settingsFrame, pingFrame].map((f) => Buffer.from(f).toString("hex")));
  };
  test("in one chunk", () => check(rewrite(input).out));
  test("byte by byte", () => check(rewrite(input, [1]).out));
  test("in chunks of every size from 2 to 64", () => {
    const whole = rewrite(input).out;
    for (let n = 2; n <= 64; n++) expect(Buffer.from(rewrite(input, [n]).out).equals(Buffer.from(whole))).toBe(true);
  });
  test("in irregular chunks", () => check(rewrite(input, [3, 17, 1, 9, 24, 2, 111]).out));
});

test("an output block over 16384 octets is split into CONTINUATIONs; PRIORITY kept", () => {
  const enc = new ClientEncoder();
  const sent = grpcRequest("/x.sock", "/p", [["x-big", "b".repeat(40_000), "plain"], ["x-after", "1"]]);
  const block = enc.encode(sent);
  const input = concat([PREFACE, headerFrames(5, block, { split: [16000, 16000], priority: [0x80, 0, 0, 3, 200] })]);
  for (const chunks of [undefined, [1000], [7]]) {
    const { out } = rewrite(input, chunks);
    const [req] = serverView(out).requests;
    expect(req!.frames.length).toBe(3);
    expect(req!.frames.map((f) => f.type)).toEqual([HEADERS, CONTINUATION, CONTINUATION]);
    expect(req!.frames.map((f) => f.stream)).toEqual([5, 5, 5]);
    expect(req!.frames[0]!.flags & PRIORITY).toBe(PRIORITY);
    expect(Array.from(req!.frames[0]!.payload.subarray(0, 5))).toEqual([0x80, 0, 0, 3, 200]);
    expect(req!.frames[0]!.payload.length).toBe(16384);
    expect(asPairs(req!.fields)).toEqual(sent.map(([n, v]) => [n, n === ":authority" ? FALLBACK_AUTHORITY : v]));
  }
});

describe("PADDED and PRIORITY on the client's HEADERS", () => {
  const sent = grpcRequest("");
  for (const [what, opts] of [
    ["padded", { pad: 7 }],
    ["padded with zero padding", { pad: 0 }],
    ["priority", { priority: [0, 0, 0, 1, 15] }],
    ["padded and priority, with END_STREAM", { pad: 3, priority: [0x80, 0, 0, 1, 255], endStream: true }],
    ["padded and priority, over CONTINUATIONs", { pad: 200, priority: [0, 0, 0, 0, 16], split: [2, 2] }],
  ] as const) {
    test(what, () => {
      const block = new ClientEncoder().encode(sent);
      const { out, rw } = rewrite(concat([PREFACE, headerFrames(1, block, opts)]), [5]);
      expect(rw.abandoned).toBe(false);
      const [req] = serverView(out).requests;
      const first = req!.frames[0]!;
      expect(first.flags & PADDED).toBe(0);
      const priority = "priority" in opts ? opts.priority : undefined;
      expect(first.flags & PRIORITY).toBe(priority ? PRIORITY : 0);
      if (priority) expect(Array.from(first.payload.subarray(0, 5))).toEqual([...priority]);
      expect(req!.endStream).toBe("endStream" in opts && opts.endStream === true);
      expect(asPairs(req!.fields)).toEqual(sent.map(([n, v]) => [n, n === ":authority" ? FALLBACK_AUTHORITY : v]));
    });
  }
});

test("DATA, SETTINGS, PING, WINDOW_UPDATE, PRIORITY and unknown frames pass byte for byte, in order", () => {
  const enc = new ClientEncoder();
  const passing = [
    settingsFrame,
    settingsAck,
    frame(WINDOW_UPDATE, 0, 0, [0, 1, 0, 0]),
    pingFrame,
    frame(PRIORITY_FRAME, 0, 1, [0, 0, 0, 0, 9]),
    frame(0xfa, 0xff, 7, [9, 9, 9]),
  ];
  const data = frame(DATA, END_STREAM | PADDED, 1, [2, 1, 2, 3, 0, 0]);
  const input = concat([PREFACE, ...passing, headerFrames(1, enc.encode(grpcRequest("/s"))), data, pingFrame]);
  const { out } = rewrite(input, [4]);
  const { others } = serverView(out);
  expect(others.map((f) => Buffer.from(f.bytes).toString("hex"))).toEqual([...passing, data, pingFrame].map((f) => Buffer.from(f).toString("hex")));
  // The preface and everything before the first HEADERS is the input's own bytes.
  const before = concat([PREFACE, ...passing]);
  expect(Buffer.from(out.subarray(0, before.length)).equals(Buffer.from(before))).toBe(true);
});

test("several requests on one connection using the client's dynamic table: the server's fresh decoder agrees", () => {
  const enc = new ClientEncoder();
  const sock = "/var/run/crib/crib.sock";
  const sent: [string, string, Mode?][][] = [
    grpcRequest(sock, "/runtime.v1.RuntimeService/Version", [["grpc-timeout", "2S"]]),
    grpcRequest(sock, "/runtime.v1.RuntimeService/Status"),
    grpcRequest(sock, "/runtime.v1.ImageService/ListImages", [["authorization", "Bearer x", "never"], ["x-plain", "p", "plain"]]),
    grpcRequest(sock, "/runtime.v1.RuntimeService/Version", [["grpc-timeout", "2S"]]),
    grpcRequest("localhost", "/runtime.v1.RuntimeService/Version"),
  ];
  const parts: Uint8Array[] = [PREFACE, settingsFrame];
  sent.forEach((fields, i) => {
    const block = enc.encode(fields, i === 2 ? 1000 : undefined); // a table size update mid-connection, with evictions
    parts.push(headerFrames(1 + 2 * i, block, { split: i === 1 ? [3] : [] }), frame(DATA, END_STREAM, 1 + 2 * i, [0, 0, 0, 0, 0]));
  });
  expect(enc.dynamicHits).toBeGreaterThan(10); // the later requests are mostly indexes into the dynamic table
  const input = concat(parts);
  for (const chunks of [undefined, [1], [13, 2, 64]]) {
    const { out, rw } = rewrite(input, chunks);
    const { requests, decoder } = serverView(out);
    expect(rw.abandoned).toBe(false);
    expect(rw.rewritten).toBe(4);
    expect(requests.map((r) => r.stream)).toEqual([1, 3, 5, 7, 9]);
    expect(requests[2]!.sizeUpdates).toEqual([1000]);
    requests.forEach((r, i) => {
      const authority = sent[i]!.find(([n]) => n === ":authority")![1];
      expect(asPairs(r.fields)).toEqual(sent[i]!.map(([n, v]) => [n, n === ":authority" ? (authority === sock ? FALLBACK_AUTHORITY : v) : v]));
    });
    expect(requests[2]!.fields.find((f) => f.name === "authorization")!.sensitive).toBe(true);
    expect(decoder.table.size).toBe(0); // literals only: the server's table stays empty
  }
});

/** The bytes a real HTTP/2 client sends (this runtime's node:http2, Huffman and dynamic table its own choice). */
async function captureClient(authority: string | undefined, requests: Record<string, string>[]): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let enough: () => void = () => {};
  const done = new Promise<void>((r) => (enough = r));
  const server = net.createServer((sock) => {
    sock.write(frame(SETTINGS, 0, 0));
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all.length < 24) return;
      try {
        const ends = parseFrames(all).filter((f) => (f.type === HEADERS || f.type === CONTINUATION) && f.flags & END_HEADERS).length;
        if (ends >= requests.length) enough();
      } catch {
        // a partial frame: wait for more
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  for (const h of requests) {
    const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ...h };
    if (authority !== undefined) headers[":authority"] = authority;
    const req = session.request(headers, { endStream: true });
    req.on("error", () => {});
  }
  await done;
  session.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return Uint8Array.from(Buffer.concat(chunks));
}

test("a real node:http2 client's bytes (Huffman, its own table use) with a path authority", async () => {
  const requests: Record<string, string>[] = [
    { ":path": "/runtime.v1.RuntimeService/Version", "content-type": "application/grpc", "x-one": "abcdefghijklmnop" },
    { ":path": "/runtime.v1.RuntimeService/Version", "content-type": "application/grpc", "x-one": "abcdefghijklmnop" },
    { ":path": "/runtime.v1.ImageService/ListImages", "content-type": "application/grpc", "x-two": "zzz" },
  ];
  const input = await captureClient("/run/crib/crib.sock", requests);
  const client = serverView(input).requests; // the client's own view: its authority on every request
  expect(client.length).toBe(3);
  for (const r of client) expect(r.fields.find((f) => f.name === ":authority")?.value).toBe("/run/crib/crib.sock");
  for (const chunks of [undefined, [1], [10]]) {
    const { out, rw } = rewrite(input, chunks);
    expect(rw.abandoned).toBe(false);
    const server = serverView(out).requests;
    expect(server.length).toBe(3);
    server.forEach((r, i) => {
      expect(r.fields.filter((f) => f.name === ":authority").map((f) => f.value)).toEqual([FALLBACK_AUTHORITY]);
      expect(asPairs(r.fields.filter((f) => f.name !== ":authority"))).toEqual(asPairs(client[i]!.fields.filter((f) => f.name !== ":authority")));
    });
  }
});

describe("malformed input: the rest of the connection passes as it came", () => {
  test("a block that does not decode goes out as received, once, with what follows", () => {
    const good = headerFrames(1, new ClientEncoder().encode(grpcRequest("/a.sock")));
    const bad = headerFrames(3, Uint8Array.from([0x82, 0xff, 0x7f]), { split: [1] }); // an index far outside the table
    const input = concat([PREFACE, good, bad, pingFrame]);
    for (const chunks of [undefined, [1], [9]]) {
      const { out, rw } = rewrite(input, chunks);
      expect(rw.abandoned).toBe(true);
      const head = rewrite(concat([PREFACE, good])).out;
      expect(Buffer.from(out).equals(Buffer.concat([head, bad, pingFrame]))).toBe(true);
    }
  });
  test("an integer with endless zero continuation octets is an error, not a hang", () => {
    const block = Uint8Array.from([0x00, 0x7f, ...new Array<number>(300).fill(0x80), 0x00, 0x00]);
    const { rw } = rewrite(concat([PREFACE, headerFrames(1, block)]));
    expect(rw.abandoned).toBe(true);
  });
  test("a flood of empty CONTINUATIONs ends in passthrough, not unbounded memory or an exception", () => {
    const rw = new AuthorityRewriter();
    rw.push(concat([PREFACE, frame(HEADERS, 0, 1, [0x82])]));
    const one = frame(CONTINUATION, 0, 1);
    const flood = new Uint8Array(one.length * 200_000);
    for (let i = 0; i < 200_000; i++) flood.set(one, i * one.length);
    let n = 0;
    for (const p of rw.push(flood)) n += p.length;
    expect(rw.abandoned).toBe(true);
    expect(n).toBe(10 + flood.length); // the held HEADERS frame and every CONTINUATION, once
  });
  test("a frame of another type inside a header block, and a stray CONTINUATION", () => {
    for (const middle of [pingFrame, frame(HEADERS, END_HEADERS, 3, [0x82]), frame(CONTINUATION, END_HEADERS, 3, [0x82])]) {
      const first = frame(HEADERS, 0, 1, [0x82]);
      const input = concat([PREFACE, first, middle, frame(CONTINUATION, END_HEADERS, 1, [0x86])]);
      const { out, rw } = rewrite(input);
      expect(rw.abandoned).toBe(true);
      expect(Buffer.from(out).equals(Buffer.from(input))).toBe(true);
    }
    const stray = concat([PREFACE, frame(CONTINUATION, END_HEADERS, 1, [0x82]), pingFrame]);
    expect(Buffer.from(rewrite(stray).out).equals(Buffer.from(stray))).toBe(true);
  });
  test("padding longer than the frame", () => {
    const input = concat([PREFACE, frame(HEADERS, END_HEADERS | PADDED, 1, [10, 0x82]), pingFrame]);
    const { out, rw } = rewrite(input, [2]);
    expect(rw.abandoned).toBe(true);
    expect(Buffer.from(out).equals(Buffer.from(input))).toBe(true);
  });
});

// ---------------------------------------------------------------- fuzz

/** mulberry32: a small seeded PRNG, so every run fuzzes the same inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function validConnection(rand: () => number): Uint8Array {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const enc = new ClientEncoder();
  const parts: Uint8Array[] = [PREFACE, settingsFrame];
  const n = 1 + int(4);
  for (let i = 0; i < n; i++) {
    const stream = 1 + 2 * i;
    const extra: [string, string, Mode?][] = [];
    for (let k = int(4); k > 0; k--) extra.push([`x-h${int(5)}`, "v".repeat(int(40)), pick(["index", "plain", "never"] as const)]);
    const fields = grpcRequest(pick([undefined, "", "/run/x.sock", "localhost", "unix:/x"]), pick(["/a", "/runtime.v1.RuntimeService/Version"]), extra);
    const block = enc.encode(fields, rand() < 0.1 ? int(4097) : undefined);
    const split = rand() < 0.3 ? [int(block.length + 1), int(10)] : [];
    parts.push(headerFrames(stream, block, { split, pad: rand() < 0.2 ? int(20) : undefined, priority: rand() < 0.2 ? [0, 0, 0, 0, int(256)] : undefined }));
    if (rand() < 0.5) parts.push(frame(DATA, END_STREAM, stream, [0, 0, 0, 0, 0]));
    if (rand() < 0.2) parts.push(pingFrame);
  }
  return concat(parts);
}

function mutate(input: Uint8Array, rand: () => number): Uint8Array {
  const int = (n: number) => Math.floor(rand() * n);
  let b: Uint8Array = Uint8Array.from(input);
  for (let m = 1 + int(3); m > 0; m--) {
    switch (int(6)) {
      case 0: // bit flips
        for (let k = 1 + int(4); k > 0; k--) {
          const i = 24 + int(b.length - 24);
          b[i] = b[i]! ^ (1 << int(8));
        }
        break;
      case 1: // truncation
        b = b.subarray(0, 24 + int(b.length - 23));
        break;
      case 2: {
        // a random frame (any type, flags, stream, length) inserted
        const len = int(3) === 0 ? int(1 << 24) : int(64);
        const payload = Uint8Array.from({ length: Math.min(len, 64) }, () => int(256));
        const f = frame(int(3) === 0 ? pick3(int) : int(256), int(256), int(8), payload);
        if (len !== payload.length) f.set([(len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff], 0); // a length that lies
        b = insertAt(b, f, 24 + int(b.length - 23));
        break;
      }
      case 3: {
        // a random header block (random octets) as a HEADERS frame, maybe continued
        const block = Uint8Array.from({ length: int(80) }, () => int(256));
        b = insertAt(b, headerFrames(1 + 2 * int(8), block, { split: rand() < 0.5 ? [int(40)] : [] }), 24 + int(b.length - 23));
        break;
      }
      case 4: {
        // random bytes over a stretch
        const i = 24 + int(b.length - 24);
        for (let k = int(16); k > 0 && i + k < b.length; k--) b[i + k] = int(256);
        break;
      }
      default: {
        // a frame header's length field changed
        const i = 24 + int(Math.max(1, b.length - 33));
        b[i] = int(256);
        break;
      }
    }
  }
  return b;
}
const pick3 = (int: (n: number) => number) => [HEADERS, CONTINUATION, DATA][int(3)]!;
function insertAt(b: Uint8Array, x: Uint8Array, at: number): Uint8Array {
  return concat([b.subarray(0, at), x, b.subarray(at)]);
}

/** Offsets where frames start in `input` (after the preface), as long as the lengths hold. */
function frameStarts(input: Uint8Array): number[] {
  const starts: number[] = [];
  let pos = 24;
  while (pos <= input.length) {
    starts.push(pos);
    if (input.length - pos < 9) break;
    pos += 9 + ((input[pos]! << 16) | (input[pos + 1]! << 8) | input[pos + 2]!);
  }
  return starts;
}

test("fuzz: mutated connections never throw, never hang, and a corrupt one becomes a byte-exact pipe", () => {
  const CASES = 3000;
  let abandoned = 0;
  for (let seed = 1; seed <= CASES; seed++) {
    const rand = prng(seed);
    const input = mutate(validConnection(rand), rand);
    const chunks = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => 1 + Math.floor(rand() * (rand() < 0.3 ? 4 : 300)));

    // Pushed in random chunks: no exception, and once it gives up each chunk comes out as it went in.
    const rw = new AuthorityRewriter();
    const parts: Uint8Array[] = [];
    for (let pos = 0, i = 0; pos < input.length; i++) {
      const piece = input.subarray(pos, pos + chunks[i % chunks.length]!);
      const wasAbandoned = rw.abandoned;
      let got: Uint8Array[];
      try {
        got = rw.push(piece);
      } catch (e) {
        throw new Error(`seed ${seed}: push threw ${String(e)}`);
      }
      if (wasAbandoned) expect(Buffer.from(concat(got)).equals(Buffer.from(piece))).toBe(true);
      parts.push(...got);
      pos += piece.length;
    }
    const out = concat(parts);

    // The same bytes in one chunk give the same output: chunking never matters.
    const whole = rewrite(input);
    if (!Buffer.from(whole.out).equals(Buffer.from(out))) throw new Error(`seed ${seed}: output depends on chunking`);
    expect(whole.rw.abandoned).toBe(rw.abandoned);

    if (rw.abandoned) {
      // From some frame boundary P on, the output is the input itself; before it,
      // exactly what the rewriter makes of the input up to P.
      abandoned++;
      const ok = frameStarts(input).some((p) => {
        const tail = input.subarray(p);
        if (out.length < tail.length || !Buffer.from(out.subarray(out.length - tail.length)).equals(Buffer.from(tail))) return false;
        const head = rewrite(input.subarray(0, p));
        return !head.rw.abandoned && Buffer.from(head.out).equals(Buffer.from(out.subarray(0, out.length - tail.length)));
      });
      if (!ok) throw new Error(`seed ${seed}: abandoned, but the output is not a rewritten prefix followed by the input's own bytes`);
    } else {
      // Still rewriting: every header block that came out decodes on a fresh decoder.
      const complete = frameStarts(input);
      const end = complete[complete.length - 1]!;
      const { out: full } = rewrite(input.subarray(0, end));
      expect(() => serverView(full)).not.toThrow();
    }
  }
  // The mutations really exercise both paths.
  expect(abandoned).toBeGreaterThan(CASES / 10);
  expect(abandoned).toBeLessThan(CASES);
});
