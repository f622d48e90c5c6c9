// The CRI log format the monitor writes: timestamps, F/P records, 16 KiB splitting,
// CRLF, unterminated last lines, and independence from how the bytes were chunked.

import { describe, expect, test } from "bun:test";
import { CriLineEncoder, MAX_LINE_BYTES, formatTimestamp, joinCriLines, parseCriLog } from "../../src/monitor/cri_log.ts";

const TS = "2026-11-25T19:20:01.123456789Z";
const enc = new TextEncoder();
const dec = new TextDecoder();

function encodeAll(chunks: (string | Uint8Array)[], end = true, stream: "stdout" | "stderr" = "stdout"): string {
  const e = new CriLineEncoder(stream);
  let out = "";
  for (const c of chunks) out += dec.decode(e.push(typeof c === "string" ? enc.encode(c) : c, TS));
  if (end) out += dec.decode(e.end(TS));
  return out;
}

describe("formatTimestamp", () => {
  test("UTC with nine fraction digits and Z", () => {
    expect(formatTimestamp(0n)).toBe("1970-01-01T00:00:00.000000000Z");
    const ns = BigInt(Date.UTC(2026, 10, 25, 19, 20, 1)) * 1_000_000n + 123_456_789n;
    expect(formatTimestamp(ns)).toBe("2026-11-25T19:20:01.123456789Z");
  });

  test("local offsets east and west of UTC", () => {
    const ns = BigInt(Date.UTC(2026, 0, 1, 0, 30, 0)) * 1_000_000n + 5n;
    expect(formatTimestamp(ns, 60)).toBe("2026-01-01T01:30:00.000000005+01:00");
    expect(formatTimestamp(ns, -330)).toBe("2025-12-31T19:00:00.000000005-05:30");
  });

  test("parses back as the same instant", () => {
    const ms = Date.UTC(2031, 5, 7, 8, 9, 10, 11);
    const s = formatTimestamp(BigInt(ms) * 1_000_000n + 999_999n, 120);
    expect(Date.parse(s.replace(/(\.\d{3})\d+/, "$1"))).toBe(ms);
  });
});

describe("CriLineEncoder", () => {
  test("one F record per line, empty lines included", () => {
    expect(encodeAll(["hello\nworld\n\n"])).toBe(`${TS} stdout F hello\n${TS} stdout F world\n${TS} stdout F \n`);
  });

  test("the stream name is the encoder's", () => {
    expect(encodeAll(["oops\n"], true, "stderr")).toBe(`${TS} stderr F oops\n`);
  });

  test("a line split across chunks waits for its newline", () => {
    const e = new CriLineEncoder("stdout");
    expect(e.push(enc.encode("hel"), TS).length).toBe(0);
    expect(e.buffered).toBe(3);
    expect(dec.decode(e.push(enc.encode("lo\n"), TS))).toBe(`${TS} stdout F hello\n`);
    expect(e.buffered).toBe(0);
  });

  test("an unterminated last line is written as P at the end", () => {
    expect(encodeAll(["done\nno newline"])).toBe(`${TS} stdout F done\n${TS} stdout P no newline\n`);
    expect(encodeAll([""])).toBe("");
  });

  test("a 40 KiB line becomes P, P, F pieces of at most 16 KiB", () => {
    const line = "x".repeat(40 * 1024);
    const recs = parseCriLog(encodeAll([line + "\n"]));
    expect(recs.map((r) => [r.partial, r.content.length])).toEqual([
      [true, MAX_LINE_BYTES],
      [true, MAX_LINE_BYTES],
      [false, 40 * 1024 - 2 * MAX_LINE_BYTES],
    ]);
    expect(joinCriLines(recs, "stdout").lines).toEqual([line]);
  });

  test("exactly 16 KiB is one F record; one byte more splits", () => {
    const at = "a".repeat(MAX_LINE_BYTES);
    expect(parseCriLog(encodeAll([at + "\n"])).map((r) => r.partial)).toEqual([false]);
    const over = parseCriLog(encodeAll([at + "b\n"]));
    expect(over.map((r) => [r.partial, r.content])).toEqual([
      [true, at],
      [false, "b"],
    ]);
  });

  test("more than 16 KiB without a newline goes out as P before the newline comes", () => {
    const e = new CriLineEncoder("stdout");
    const out = dec.decode(e.push(enc.encode("z".repeat(MAX_LINE_BYTES + 10)), TS));
    expect(parseCriLog(out).map((r) => [r.partial, r.content.length])).toEqual([[true, MAX_LINE_BYTES]]);
    expect(e.buffered).toBe(10);
  });

  test("CRLF counts as the newline, also when split across chunks; a lone CR stays", () => {
    expect(encodeAll(["a\r\nb\r", "\nc\rd\n"])).toBe(`${TS} stdout F a\n${TS} stdout F b\n${TS} stdout F c\rd\n`);
  });

  test("bytes are kept as they are (not UTF-8 decoded)", () => {
    const e = new CriLineEncoder("stdout");
    const out = e.push(new Uint8Array([0xff, 0xfe, 0x00, 0x41, 0x0a]), TS);
    const head = enc.encode(`${TS} stdout F `);
    expect([...out.subarray(head.length)]).toEqual([0xff, 0xfe, 0x00, 0x41, 0x0a]);
  });

  test("output does not depend on how the input was chunked", () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const parts: string[] = [];
    for (let i = 0; i < 200; i++) parts.push("w".repeat(rand(3) === 0 ? rand(40_000) : rand(50)) + (rand(5) === 0 ? "\r\n" : "\n"));
    parts.push("tail without newline");
    const text = parts.join("");
    const whole = encodeAll([text]);
    for (let trial = 0; trial < 5; trial++) {
      const chunks: string[] = [];
      for (let i = 0; i < text.length; ) {
        const n = 1 + rand(trial === 0 ? 300 : 30_000);
        chunks.push(text.slice(i, i + n));
        i += n;
      }
      expect(encodeAll(chunks)).toBe(whole);
    }
    const recs = parseCriLog(whole);
    expect(recs.every((r) => r.content.length <= MAX_LINE_BYTES)).toBe(true);
    const joined = joinCriLines(recs, "stdout");
    expect(joined.lines).toEqual(parts.slice(0, -1).map((p) => p.replace(/\r?\n$/, "")));
    expect(joined.unterminated).toBe("tail without newline");
  });
});

describe("parseCriLog", () => {
  test("rejects lines that are not CRI records", () => {
    expect(() => parseCriLog("garbage\n")).toThrow(/not a CRI log line/);
  });
});
