// The HTTP/2 server connection (src/h2/connection.ts) driven frame by frame, without
// a socket: what a client sends in, what the server writes out.
import { describe, expect, test } from "bun:test";
import { H2Connection, headerBlock, type H2Stream, type StreamListener } from "../../src/h2/connection.ts";
import { ErrorCode, Flag, frame, FrameType, PREFACE, Setting, uint32Payload } from "../../src/h2/frames.ts";
import { HpackDecoder } from "../../src/h2/hpack.ts";
import { Rng, testSeed } from "../helpers/stress.ts";

interface Frame { type: number; flags: number; streamId: number; payload: Buffer }

/** A connection with a recording transport and a request log. */
function harness(answer?: (s: H2Stream, events: string[]) => void) {
  const written: Buffer[] = [];
  let ended = false;
  const events: string[] = [];
  const streams: H2Stream[] = [];
  const conn = new H2Connection(
    { write: (d) => void written.push(Buffer.from(d)), end: () => void (ended = true) },
    {
      onRequest(stream): StreamListener {
        streams.push(stream);
        events.push(`request ${stream.id} ${stream.headers.get(":path")}`);
        return {
          onData: (chunk) => void events.push(`data ${stream.id} ${Buffer.from(chunk).toString()}`),
          onEnd: () => {
            events.push(`end ${stream.id}`);
            answer?.(stream, events);
          },
          onAbort: (reason) => void events.push(`abort ${stream.id} ${reason}`),
        };
      },
    },
  );
  const decoder = new HpackDecoder();
  let parsed = 0;
  let buffer = Buffer.alloc(0);
  /** Frames written since the last call, after the microtask flush. */
  const output = async (): Promise<Frame[]> => {
    await Promise.resolve();
    buffer = Buffer.concat([buffer, ...written.slice(parsed)]);
    parsed = written.length;
    const frames: Frame[] = [];
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      frames.push({ type: buffer[3]!, flags: buffer[4]!, streamId: buffer.readUInt32BE(5) & 0x7fffffff, payload: buffer.subarray(9, 9 + length) });
      buffer = buffer.subarray(9 + length);
    }
    return frames;
  };
  const headersOf = (f: Frame) => Object.fromEntries(decoder.decode(f.payload).fields.map((x) => [x.name, x.value]));
  return { conn, events, streams, output, headersOf, ended: () => ended };
}

const settings = (pairs: [number, number][] = []) => {
  const b = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, b);
};
const request = (path: string) => headerBlock([[":method", "POST"], [":scheme", "http"], [":path", path], [":authority", "/run/crib/crib.sock"], ["content-type", "application/grpc"]]);
const open = (c: H2Connection, pairs: [number, number][] = []) => c.receive(Buffer.concat([PREFACE, settings(pairs)]));
const typesOf = (frames: Frame[]) => frames.map((f) => f.type);
const echo = (s: H2Stream) => {
  s.respond(headerBlock([[":status", "200"]]));
  s.write(Buffer.alloc(100, 0x61));
  s.end(headerBlock([["grpc-status", "0"]]));
};

describe("HTTP/2 server connection", () => {
  test("greets with SETTINGS and a connection WINDOW_UPDATE, and ACKs the client's SETTINGS", async () => {
    const h = harness();
    open(h.conn);
    const out = await h.output();
    expect(typesOf(out)).toEqual([FrameType.SETTINGS, FrameType.WINDOW_UPDATE, FrameType.SETTINGS]);
    expect(out[2]!.flags & Flag.ACK).toBe(Flag.ACK);
  });

  test("a request with any :authority gets headers, data and trailers, in one write", async () => {
    const h = harness(echo);
    open(h.conn);
    await h.output();
    h.conn.receive(Buffer.concat([frame(FrameType.HEADERS, Flag.END_HEADERS, 1, request("/a/B")), frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from("hello"))]));
    const out = await h.output();
    expect(h.events).toEqual(["request 1 /a/B", "data 1 hello", "end 1"]);
    expect(typesOf(out)).toEqual([FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]);
    expect(h.headersOf(out[0]!)[":status"]).toBe("200");
    expect(out[1]!.payload.length).toBe(100);
    expect(out[2]!.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
    expect(h.headersOf(out[2]!)["grpc-status"]).toBe("0");
    expect(h.conn.activeStreams).toBe(0);
  });

  test("padded HEADERS with priority, split over CONTINUATIONs, and padded DATA", async () => {
    const h = harness(echo);
    open(h.conn);
    const block = request("/padded");
    const first = Buffer.concat([Buffer.from([3]), Buffer.alloc(5), block.subarray(0, 10), Buffer.alloc(3)]);
    h.conn.receive(Buffer.concat([
      frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 1, first),
      frame(FrameType.CONTINUATION, 0, 1, block.subarray(10, 20)),
      frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(20)),
      frame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.concat([Buffer.from([2]), Buffer.from("xy"), Buffer.alloc(2)])),
    ]));
    await h.output();
    expect(h.events).toEqual(["request 1 /padded", "data 1 xy", "end 1"]);
  });

  test("response DATA waits for the client's window, stream and connection", async () => {
    const h = harness(echo);
    open(h.conn, [[Setting.INITIAL_WINDOW_SIZE, 30]]);
    await h.output();
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, request("/w")));
    let out = await h.output();
    expect(typesOf(out)).toEqual([FrameType.HEADERS, FrameType.DATA]);
    expect(out[1]!.payload.length).toBe(30);
    h.conn.receive(frame(FrameType.WINDOW_UPDATE, 0, 1, uint32Payload(50)));
    out = await h.output();
    expect(out.map((f) => f.payload.length)).toEqual([50]);
    // A larger initial window by SETTINGS opens the rest; the trailers follow the data.
    h.conn.receive(settings([[Setting.INITIAL_WINDOW_SIZE, 1000]]));
    out = await h.output();
    expect(typesOf(out)).toEqual([FrameType.SETTINGS, FrameType.DATA, FrameType.HEADERS]);
    expect(out[1]!.payload.length).toBe(20);
  });

  test("write() says false once over 1 MiB of earlier writes still waits for the client's window", async () => {
    const h = harness();
    open(h.conn, [[Setting.INITIAL_WINDOW_SIZE, 1000]]);
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, request("/watch")));
    const s = h.streams[0]!;
    s.respond(headerBlock([[":status", "200"]]));
    expect(s.write(Buffer.alloc(2_000_000))).toBe(true); // one large message alone is not a stalled client
    expect(s.write(Buffer.alloc(10))).toBe(false);
    h.conn.receive(frame(FrameType.WINDOW_UPDATE, 0, 1, uint32Payload(2_100_000)));
    h.conn.receive(frame(FrameType.WINDOW_UPDATE, 0, 0, uint32Payload(2_100_000)));
    expect(s.write(Buffer.alloc(10))).toBe(true);
  });

  test("DATA frames respect the client's MAX_FRAME_SIZE; a large header block goes out in CONTINUATIONs", async () => {
    const big = "x".repeat(40_000);
    const h = harness((s) => {
      s.respond(headerBlock([[":status", "200"]]));
      s.write(Buffer.alloc(40_000));
      s.end(headerBlock([["grpc-status", "2"], ["grpc-message", big]]));
    });
    open(h.conn, [[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]);
    h.conn.receive(frame(FrameType.WINDOW_UPDATE, 0, 0, uint32Payload(1 << 20)));
    await h.output();
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, request("/big")));
    const out = await h.output();
    expect(out.filter((f) => f.type === FrameType.DATA).map((f) => f.payload.length)).toEqual([16384, 16384, 7232]);
    const trailer = out.slice(out.findLastIndex((f) => f.type === FrameType.HEADERS));
    expect(typesOf(trailer)).toEqual([FrameType.HEADERS, FrameType.CONTINUATION, FrameType.CONTINUATION]);
    expect(trailer.at(-1)!.flags & Flag.END_HEADERS).toBe(Flag.END_HEADERS);
    expect(h.headersOf({ ...trailer[0]!, payload: Buffer.concat(trailer.map((f) => f.payload)) })["grpc-message"]).toBe(big);
  });

  test("PING is answered with its payload; RST_STREAM aborts the stream", async () => {
    const h = harness();
    open(h.conn);
    await h.output();
    h.conn.receive(frame(FrameType.PING, 0, 0, Buffer.from("12345678")));
    const out = await h.output();
    expect(out.map((f) => [f.type, f.flags, f.payload.toString()])).toEqual([[FrameType.PING, Flag.ACK, "12345678"]]);
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, request("/slow")));
    h.conn.receive(frame(FrameType.RST_STREAM, 0, 1, uint32Payload(ErrorCode.CANCEL)));
    expect(h.events.at(-1)).toBe("abort 1 the client reset the stream (code 8)");
    expect(h.conn.activeStreams).toBe(0);
  });

  test("an answer before the request ends resets the rest of it with NO_ERROR", async () => {
    const h = harness();
    open(h.conn);
    await h.output();
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, request("/early")));
    h.streams[0]!.respond(headerBlock([[":status", "200"], ["grpc-status", "8"]]), true);
    const out = await h.output();
    expect(out.map((f) => [f.type, f.type === FrameType.RST_STREAM ? f.payload.readUInt32BE(0) : f.flags & Flag.END_STREAM])).toEqual([
      [FrameType.HEADERS, Flag.END_STREAM],
      [FrameType.RST_STREAM, ErrorCode.NO_ERROR],
    ]);
    // The client's late DATA is dropped, its connection window still replenished later.
    h.conn.receive(frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from("late")));
    expect(h.events).toEqual(["request 1 /early"]);
  });

  test("graceful shutdown: GOAWAY, new streams refused, the open one finishes, then the transport ends", async () => {
    const h = harness();
    open(h.conn);
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, request("/open")));
    await h.output();
    h.conn.shutdown();
    h.conn.receive(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, request("/late")));
    let out = await h.output();
    expect(out.map((f) => [f.type, f.streamId])).toEqual([[FrameType.GOAWAY, 0], [FrameType.RST_STREAM, 3]]);
    expect(out[1]!.payload.readUInt32BE(0)).toBe(ErrorCode.REFUSED_STREAM);
    expect(h.ended()).toBe(false);
    echo(h.streams[0]!);
    out = await h.output();
    expect(h.ended()).toBe(true);
    expect(out.at(-1)!.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
  });

  const connectionErrors: [string, (c: H2Connection) => void, number][] = [
    ["a wrong preface", (c) => c.receive(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), ErrorCode.PROTOCOL_ERROR],
    ["a first frame other than SETTINGS", (c) => c.receive(Buffer.concat([PREFACE, frame(FrameType.PING, 0, 0, Buffer.alloc(8))])), ErrorCode.PROTOCOL_ERROR],
    ["a frame over 16 KiB", (c) => { open(c); c.receive(frame(FrameType.DATA, 0, 1, Buffer.alloc(16385))); }, ErrorCode.FRAME_SIZE_ERROR],
    ["HEADERS on an even stream", (c) => { open(c); c.receive(frame(FrameType.HEADERS, Flag.END_HEADERS, 2, request("/x"))); }, ErrorCode.PROTOCOL_ERROR],
    ["a header block that does not decode", (c) => { open(c); c.receive(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))); }, ErrorCode.COMPRESSION_ERROR],
    ["a flood of empty CONTINUATIONs", (c) => { open(c); c.receive(Buffer.concat([frame(FrameType.HEADERS, 0, 1, Buffer.alloc(0)), ...Array.from({ length: 300 }, () => frame(FrameType.CONTINUATION, 0, 1))])); }, ErrorCode.ENHANCE_YOUR_CALM],
    ["a WINDOW_UPDATE overflowing the connection window", (c) => { open(c); c.receive(frame(FrameType.WINDOW_UPDATE, 0, 0, uint32Payload(2 ** 31 - 1))); }, ErrorCode.FLOW_CONTROL_ERROR],
  ];
  for (const [what, send, code] of connectionErrors) {
    test(`${what} ends the connection with GOAWAY ${code}`, async () => {
      const h = harness();
      send(h.conn);
      const goaway = (await h.output()).find((f) => f.type === FrameType.GOAWAY);
      expect(goaway?.payload.readUInt32BE(4)).toBe(code);
      expect(h.ended()).toBe(true);
    });
  }

  test("random frames after a valid opening never throw, hang or write a malformed frame", async () => {
    const rng = new Rng(testSeed("h2 connection fuzz"));
    const types = [0, 1, 2, 3, 4, 6, 7, 8, 9, 0xa];
    for (let round = 0; round < 2000; round++) {
      const h = harness((s) => echo(s));
      open(h.conn);
      const parts: Buffer[] = [];
      for (let i = rng.range(1, 8); i > 0; i--) {
        const type = rng.pick(types);
        const stream = rng.pick([0, 1, 1, 3, 5, 2]);
        const payload = type === FrameType.HEADERS || type === FrameType.CONTINUATION
          ? (rng.chance(0.5) ? request("/f") : Buffer.from(rng.bytes(rng.range(0, 40))))
          : Buffer.from(rng.bytes(rng.pick([0, 4, 6, 8, rng.range(0, 100)])));
        parts.push(frame(type, rng.range(0, 255), stream, payload));
      }
      const bytes = Buffer.concat(parts);
      // Split at a random point: frames cut across reads must parse the same.
      const cut = rng.range(0, bytes.length);
      h.conn.receive(bytes.subarray(0, cut));
      h.conn.receive(bytes.subarray(cut));
      for (const f of await h.output()) expect(f.payload.length).toBeLessThanOrEqual(16384);
    }
  });
});
