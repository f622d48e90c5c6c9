// SPDY/3.1 framing and header compression, without sockets.
import { describe, expect, test } from "bun:test";
import zlib from "node:zlib";
import { HeaderCompressor, HeaderDecompressor } from "../../src/stream/spdy_compression.ts";
import { adler32, SPDY3_DICTIONARY } from "../../src/stream/spdy_dictionary.ts";
import {
  decodeHeaderBlock,
  encodeData,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeSynReply,
  encodeSynStream,
  encodeWindowUpdate,
  FLAG_FIN,
  FrameReader,
  RstStatus,
  SpdyProtocolError,
  type Frame,
} from "../../src/stream/spdy_frames.ts";
import { exitCodeOf, ResizeDecoder, statusFor } from "../../src/stream/status.ts";

/** Inflate a sequence of header blocks with one zlib context, as a peer would. */
async function inflateAll(blocks: Uint8Array[]): Promise<Buffer[]> {
  const inf = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  let out: Buffer[] = [];
  inf.on("data", (c: Buffer) => out.push(c));
  const res: Buffer[] = [];
  for (const b of blocks) {
    await new Promise<void>((resolve, reject) => {
      inf.once("error", reject);
      inf.write(b);
      inf.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
    });
    res.push(Buffer.concat(out));
    out = [];
  }
  return res;
}

/** Deflate header blocks the way Go's framer does (one stream, sync flush per block). */
async function deflateAll(blocks: Uint8Array[]): Promise<Buffer[]> {
  const def = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
  let out: Buffer[] = [];
  def.on("data", (c: Buffer) => out.push(c));
  const res: Buffer[] = [];
  for (const b of blocks) {
    await new Promise<void>((resolve) => {
      def.write(b);
      def.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
    });
    res.push(Buffer.concat(out));
    out = [];
  }
  return res;
}

describe("SPDY/3 dictionary", () => {
  test("length-prefixed words then the value run, 1423 bytes", () => {
    expect(SPDY3_DICTIONARY.length).toBe(1423);
    expect(SPDY3_DICTIONARY.subarray(0, 11)).toEqual(Buffer.from("\0\0\0\x07options", "latin1"));
    expect(SPDY3_DICTIONARY.subarray(-9).toString("latin1")).toBe(",*,enq=0.");
  });

  test("adler32 matches the id zlib writes for the dictionary", () => {
    const z = zlib.deflateSync(Buffer.from("x"), { dictionary: SPDY3_DICTIONARY });
    expect((z[1]! & 0x20) !== 0).toBe(true); // FDICT
    expect(z.readUInt32BE(2)).toBe(adler32(SPDY3_DICTIONARY));
    expect(adler32(Buffer.from("Wikipedia"))).toBe(0x11e60398);
  });
});

describe("frames", () => {
  test("every frame type round-trips through the reader", () => {
    const block = Buffer.from([1, 2, 3]);
    const bytes = Buffer.concat([
      encodeSynStream(1, block, { flags: FLAG_FIN, priority: 3, associatedId: 0 }),
      encodeSynReply(1, block),
      encodeData(1, Buffer.from("hello"), FLAG_FIN),
      encodeRstStream(3, RstStatus.CANCEL),
      encodeSettings([{ flags: 0, id: 7, value: 65536 }]),
      encodePing(2),
      encodeGoAway(5),
      encodeWindowUpdate(1, 1000),
    ]);
    const frames = new FrameReader().push(bytes);
    expect(frames).toEqual([
      { type: "syn_stream", streamId: 1, associatedId: 0, priority: 3, flags: FLAG_FIN, headerBlock: block },
      { type: "syn_reply", streamId: 1, flags: 0, headerBlock: block },
      { type: "data", streamId: 1, flags: FLAG_FIN, data: Buffer.from("hello") },
      { type: "rst_stream", streamId: 3, status: RstStatus.CANCEL },
      { type: "settings", flags: 0, entries: [{ flags: 0, id: 7, value: 65536 }] },
      { type: "ping", id: 2 },
      { type: "goaway", lastGoodStreamId: 5, status: 0 },
      { type: "window_update", streamId: 1, delta: 1000 },
    ] as Frame[]);
  });

  test("wire layout of control and data frames", () => {
    // |1|version 3|type 2 (SYN_REPLY)| flags 0 | length 4+3 | stream id 1 | block
    expect(encodeSynReply(1, Buffer.from([9, 9, 9])).toString("hex")).toBe("80030002" + "00000007" + "00000001" + "090909");
    // |0|stream 5| flags FIN | length 2 | data
    expect(encodeData(5, Buffer.from("hi"), FLAG_FIN).toString("hex")).toBe("00000005" + "01000002" + "6869");
    // SYN_STREAM: stream id, associated id, priority in the top 3 bits, slot
    expect(encodeSynStream(3, Buffer.alloc(0), { priority: 7 }).toString("hex")).toBe("80030001" + "0000000a" + "00000003" + "00000000" + "e000");
  });

  test("frames split at any byte boundary come out whole", () => {
    const bytes = Buffer.concat([encodeData(1, Buffer.from("abcdef")), encodePing(4), encodeData(3, Buffer.alloc(0), FLAG_FIN)]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const r = new FrameReader();
      const frames = [...r.push(bytes.subarray(0, cut)), ...r.push(bytes.subarray(cut))];
      expect(frames.map((f) => f.type)).toEqual(["data", "ping", "data"]);
      expect(r.pending).toBe(0);
    }
    // One byte at a time.
    const r = new FrameReader();
    const frames: Frame[] = [];
    for (const b of bytes) frames.push(...r.push(Uint8Array.of(b)));
    expect(frames).toHaveLength(3);
  });

  test("unknown control types are skipped, bad versions and oversize frames are errors", () => {
    const unknown = Buffer.from("8003000a0000000000000000", "hex"); // type 10, 4-byte payload
    expect(new FrameReader().push(unknown)).toEqual([{ type: "unknown", frameType: 10, flags: 0 }]);
    const v2 = Buffer.from("800200060000000400000001", "hex");
    expect(() => new FrameReader().push(v2)).toThrow(SpdyProtocolError);
    const big = Buffer.from("80030001" + "00100000", "hex"); // 1 MiB SYN_STREAM announced
    expect(() => new FrameReader(64 * 1024).push(big)).toThrow(/larger than allowed/);
    expect(() => new FrameReader().push(Buffer.from("0000000000000001ff", "hex"))).toThrow(/stream 0/);
  });
});

describe("header blocks", () => {
  test("names are lowercased, several values joined with NUL", () => {
    const block = encodeHeaderBlock({ StreamType: "stdout", Multi: ["a", "b"] });
    const h = decodeHeaderBlock(block);
    expect(h.get("streamtype")).toEqual(["stdout"]);
    expect(h.get("multi")).toEqual(["a", "b"]);
    // count, then len+name, len+value pairs
    expect(block.subarray(0, 4).readUInt32BE(0)).toBe(2);
    expect(block.toString("latin1")).toContain("a\0b");
  });

  test("truncated or absurd blocks are rejected", () => {
    const block = encodeHeaderBlock({ port: "80" });
    expect(() => decodeHeaderBlock(block.subarray(0, block.length - 1))).toThrow(SpdyProtocolError);
    const huge = Buffer.from("ffffffff", "hex");
    expect(() => decodeHeaderBlock(huge)).toThrow(/pairs/);
  });

  test("our compressed blocks inflate with a standard zlib context", async () => {
    const c = new HeaderCompressor();
    const blocks = [encodeHeaderBlock({ streamtype: "error", port: "8080", requestid: "0" }), encodeHeaderBlock({}), encodeHeaderBlock({ streamtype: "data", big: "x".repeat(70_000) })];
    const wire = blocks.map((b) => c.compress(b));
    expect(wire[0]!.subarray(0, 2).toString("hex")).toBe("78bb");
    expect(wire[0]!.readUInt32BE(2)).toBe(adler32(SPDY3_DICTIONARY));
    expect(wire[1]![0]).toBe(0x00); // later blocks continue the stream: no second zlib header
    const back = await inflateAll(wire);
    expect(back).toEqual(blocks);
  });

  test("blocks compressed by a real deflater (as Go's framer does) decompress in order", async () => {
    const blocks = [1, 2, 3, 4].map((i) => encodeHeaderBlock({ streamtype: "data", port: "80", requestid: String(i) }));
    const wire = await deflateAll(blocks);
    // Later blocks refer back to earlier ones: only a shared context reads them.
    expect(wire[3]!.length).toBeLessThan(wire[0]!.length);
    const d = new HeaderDecompressor();
    const out = await Promise.all(wire.map((w) => d.decompress(w)));
    expect(out).toEqual(blocks);
    d.close();
  });

  test("garbage and zlib bombs fail instead of hanging", async () => {
    const d = new HeaderDecompressor();
    await expect(d.decompress(Buffer.from("not zlib at all"))).rejects.toThrow(SpdyProtocolError);
    d.close();
    const [bomb] = await deflateAll([Buffer.alloc(1 << 20)]);
    const small = new HeaderDecompressor(64 * 1024);
    await expect(small.decompress(bomb!)).rejects.toThrow(/more than/);
    small.close();
  });
});

describe("status and resize messages", () => {
  test("exit codes become metav1.Status as kubectl reads them", () => {
    expect(statusFor({ exitCode: 0 })).toEqual({ metadata: {}, status: "Success" });
    const st = statusFor({ exitCode: 3 });
    expect(st.status).toBe("Failure");
    expect(st.reason).toBe("NonZeroExitCode");
    expect(st.details?.causes).toEqual([{ reason: "ExitCode", message: "3" }]);
    expect(exitCodeOf(st)).toBe(3);
    expect(exitCodeOf(statusFor({ error: "boom" }))).toBe(1);
  });

  test("resize objects are decoded across chunk boundaries", () => {
    const d = new ResizeDecoder();
    expect(d.push('{"Width":80,"Hei')).toEqual([]);
    expect(d.push('ght":24}{"Width":100,"Height":37}\n{"Width"')).toEqual([{ width: 80, height: 24 }, { width: 100, height: 37 }]);
    expect(d.push(':1,"Height":2}')).toEqual([{ width: 1, height: 2 }]);
    expect(() => d.push("[1]")).toThrow();
  });
});
