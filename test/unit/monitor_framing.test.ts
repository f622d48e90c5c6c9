import { expect, test } from "bun:test";
import { FrameReader, OversizedLine } from "../../src/monitor/framing.ts";

type Msg = { n: number; binary?: number; text?: string };

function reader(maxLine?: number) {
  const got: Array<[Msg, string]> = [];
  const r = new FrameReader<Msg>(
    (line) => JSON.parse(line) as Msg,
    (m) => m.binary ?? 0,
    (m, bytes) => got.push([m, bytes.toString("latin1")]),
    maxLine,
  );
  return { r, got };
}

const enc = (s: string) => new TextEncoder().encode(s);

test("messages, and the bytes after those that say so, however the stream is cut", () => {
  const whole = enc('{"n":1}\n{"n":2,"binary":5}\nab\ncd{"n":3,"text":"é"}\n\n{"n":4,"binary":1}\nx');
  // Every cut point, and byte by byte.
  for (let cut = 0; cut <= whole.length; cut++) {
    const { r, got } = reader();
    r.feed(whole.subarray(0, cut));
    r.feed(whole.subarray(cut));
    expect(got).toEqual([[{ n: 1 }, ""], [{ n: 2, binary: 5 }, "ab\ncd"], [{ n: 3, text: "é" }, ""], [{ n: 4, binary: 1 }, "x"]]);
  }
  const { r, got } = reader();
  for (const b of whole) r.feed(Uint8Array.of(b));
  expect(got.map(([m]) => m.n)).toEqual([1, 2, 3, 4]);
});

test("a line past the limit is refused; a skipped line does not stop the next", () => {
  const { r } = reader(16);
  expect(() => r.feed(enc('{"n":1,"text":"0123456789abcdef"'))).toThrow(OversizedLine);
  const got: number[] = [];
  const skip = new FrameReader<Msg>((line) => (line.startsWith("{") ? (JSON.parse(line) as Msg) : undefined), () => 0, (m) => got.push(m.n));
  skip.feed(enc('not json\n{"n":7}\n'));
  expect(got).toEqual([7]);
});
