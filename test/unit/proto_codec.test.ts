// The generated codecs (src/protocol/wire_codec.ts over messages.ts) against protobuf.js,
// which crib used before: for every message type of both protos, random values must
// encode and decode to exactly what protobuf.js gives (both directions), and truncated
// or garbled bytes must throw whenever protobuf.js throws, and never hang.
import { describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { MESSAGES } from "../../src/protocol/messages.ts";
import { codecFor } from "../../src/protocol/proto.ts";
import { criType, decodeMessage, encodeMessage } from "../helpers/protobuf_reference.ts";

/** A small deterministic PRNG (mulberry32), so a failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ["", "a", "pod", "ünïcødé", "日本語", "😀 emoji", "x".repeat(200), "with\nnewline", "__proto__x"];

function randomScalar(r: () => number, type: string): unknown {
  const int = (bits: number) => Math.floor(r() * 2 ** bits);
  const big = () => (BigInt(int(32)) << 32n) | BigInt(int(32));
  const pick = r();
  switch (type) {
    case "string": return pick < 0.5 ? WORDS[int(30) % WORDS.length] : String.fromCodePoint(...Array.from({ length: int(4) }, () => 0x20 + int(16) % 0xd000));
    case "bool": return pick < 0.5;
    case "bytes": return Buffer.from(Array.from({ length: int(4) }, () => int(8)));
    case "int32": case "sint32": case "sfixed32": return pick < 0.3 ? -int(31) : pick < 0.4 ? -(2 ** 31) : int(31);
    case "uint32": case "fixed32": return pick < 0.2 ? 2 ** 32 - 1 : int(pick < 0.6 ? 7 : 32);
    case "int64": case "sint64": case "sfixed64": return pick < 0.3 ? BigInt.asIntN(64, big()) : pick < 0.4 ? -(2n ** 63n) : pick < 0.6 ? BigInt(int(20)) : pick < 0.8 ? int(40) : String(int(30));
    case "uint64": case "fixed64": return pick < 0.3 ? big() : pick < 0.5 ? 2n ** 64n - 1n : BigInt(int(20));
    case "double": return pick < 0.1 ? -0 : (r() - 0.5) * 10 ** int(4);
    case "float": return Math.fround((r() - 0.5) * 1000);
    default: throw new Error(`no random ${type}`);
  }
}

function randomValue(r: () => number, field: protobuf.Field, depth: number): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Type) return depth > 4 ? null : randomMessage(r, t, depth + 1);
  if (t instanceof protobuf.Enum) {
    const ids = Object.keys(t.valuesById).map(Number);
    return r() < 0.9 ? ids[Math.floor(r() * ids.length)] : Math.floor(r() * 200) - 100; // unknown values stay numbers
  }
  return randomScalar(r, field.type);
}

function randomMessage(r: () => number, type: protobuf.Type, depth = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    f.resolve();
    if (r() < 0.25) continue; // left out
    const n = Math.floor(r() * 4);
    if (f instanceof protobuf.MapField) {
      const m: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) m[`k${Math.floor(r() * 1000)}`] = randomValue(r, f, depth);
      o[f.name] = m;
    } else if (f.repeated) o[f.name] = Array.from({ length: n }, () => randomValue(r, f, depth)).filter((v) => v !== null);
    else o[f.name] = randomValue(r, f, depth);
  }
  return o;
}

/** Outcome of decoding: the value, or that it threw. */
function attempt(fn: () => unknown): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: fn() };
  } catch {
    return { ok: false };
  }
}

const TYPES = Object.keys(MESSAGES);
const ROUNDS = 30;

describe("generated codecs match protobuf.js", () => {
  test("the tables cover every message of both protos", () => {
    expect(TYPES.length).toBeGreaterThan(150);
    expect(TYPES.some((t) => t.startsWith("crib.v1."))).toBe(true);
  });

  test.each(TYPES)("%s: random values, both directions", (name) => {
    const ref = criType(name);
    const codec = codecFor(name);
    const r = rng(name.length * 7919 + name.charCodeAt(name.length - 1));
    for (let i = 0; i < ROUNDS; i++) {
      const value = randomMessage(r, ref);
      const refBytes = encodeMessage(ref, value);
      const expected = decodeMessage(ref, refBytes);
      // protobuf.js's bytes -> ours.
      expect(codec.decode(refBytes)).toEqual(expected);
      // Ours -> protobuf.js, and ours -> ours.
      const ours = codec.encode(value);
      expect(decodeMessage(ref, ours)).toEqual(expected);
      expect(codec.decode(ours)).toEqual(expected);
    }
  });

  test.each(TYPES)("%s: truncated and garbled bytes throw when protobuf.js throws", (name) => {
    const ref = criType(name);
    const codec = codecFor(name);
    const r = rng(name.length * 104729);
    for (let i = 0; i < 10; i++) {
      const bytes = encodeMessage(ref, randomMessage(r, ref));
      const inputs: Buffer[] = [];
      for (let cut = 0; cut < bytes.length; cut += 1 + Math.floor(bytes.length / 20)) inputs.push(bytes.subarray(0, cut));
      for (let j = 0; j < 5 && bytes.length > 0; j++) {
        const g = Buffer.from(bytes);
        g[Math.floor(r() * g.length)] = Math.floor(r() * 256);
        inputs.push(g);
      }
      inputs.push(Buffer.from(Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.floor(r() * 256))));
      for (const input of inputs) {
        const theirs = attempt(() => decodeMessage(ref, input));
        const ours = attempt(() => codec.decode(input));
        if (!theirs.ok) expect(ours.ok, `${input.toString("hex")}: protobuf.js throws, ours decodes`).toBe(false);
        // Garbled strings may hold invalid UTF-8, which the two replace differently.
        else if (ours.ok && !JSON.stringify(ours.value, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)).includes("\ufffd")) expect(ours.value).toEqual(theirs.value);
      }
    }
  });
});

describe("wire details", () => {
  const versionReq = codecFor<{ version: string }>("runtime.v1.VersionRequest");

  test("a length running past the buffer throws", () => {
    expect(() => versionReq.decode(Buffer.from([0x0a, 0x05, 0x61]))).toThrow();
  });

  test("an over-long varint, field number 0 and wire types 6/7 throw", () => {
    expect(() => versionReq.decode(Buffer.from([0x08, ...Array(10).fill(0xff), 0x01]))).toThrow();
    expect(() => versionReq.decode(Buffer.from([0x00, 0x00]))).toThrow();
    expect(() => versionReq.decode(Buffer.from([0x0e]))).toThrow();
    expect(() => versionReq.decode(Buffer.from([0x0f]))).toThrow();
  });

  test("unpacked repeated scalars decode like packed ones", () => {
    const c = codecFor<{ supplemental_groups: bigint[] }>("runtime.v1.LinuxSandboxSecurityContext");
    const no = 5; // repeated int64 supplemental_groups = 5
    const unpacked = Buffer.from([(no << 3) | 0, 1, (no << 3) | 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect(c.decode(unpacked).supplemental_groups).toEqual([1n, -1n]);
  });

  test("a negative int32 is a 10-byte varint", () => {
    const c = codecFor<{ container_port: number }>("runtime.v1.PortMapping");
    const bytes = c.encode({ container_port: -1 });
    expect(bytes.length).toBe(11);
    expect(c.decode(bytes).container_port).toBe(-1);
  });

  test("a map entry with key __proto__ stays data", () => {
    const c = codecFor<{ labels: Record<string, string> }>("runtime.v1.PodSandboxConfig");
    const back = c.decode(c.encode({ labels: JSON.parse('{"__proto__":"x","a":"b"}') as Record<string, string> }));
    expect(Object.getPrototypeOf(back.labels)).toBe(Object.prototype);
    expect(Object.keys(back.labels).sort()).toEqual(["__proto__", "a"]);
  });

  test("deep nesting throws instead of overflowing the stack", () => {
    // Mount.image (9) is an ImageSpec; ImageSpec nests nothing, so nest unknown groups instead.
    const deep = Buffer.concat([Buffer.alloc(200, (15 << 3) | 3), Buffer.alloc(200, (15 << 3) | 4)]);
    expect(() => versionReq.decode(deep)).toThrow();
  });
});
