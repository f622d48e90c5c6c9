// Codec speed: protobuf.js (what crib used) vs the generic table-walking codec
// (src/protocol/wire_codec.ts) vs per-message generated decode functions (emitted here
// from the same tables, as a generator would write them to a file).
// Run: bun test/bench/codec_compare.ts   (prints median µs per op over 15 rounds)
import { MESSAGES, ENUMS } from "../../src/protocol/messages.ts";
import { codecFor } from "../../src/protocol/proto.ts";
import { criType, decodeMessage, encodeMessage } from "../helpers/protobuf_reference.ts";

function listContainers(n: number): object {
  return {
    containers: Array.from({ length: n }, (_, i) => ({
      id: `${i}`.padStart(64, "c"), pod_sandbox_id: `${i}`.padStart(64, "p"),
      metadata: { name: `ctr-${i}`, attempt: 1 }, image: { image: "registry.local/app:1.0", annotations: {} },
      image_ref: "sha256:" + "a".repeat(64), state: 1, created_at: 1733390000000000000n + BigInt(i),
      labels: { "io.kubernetes.pod.name": `pod-${i}`, "io.kubernetes.pod.namespace": "default", "io.kubernetes.container.name": `ctr-${i}` },
      annotations: { "io.kubernetes.container.hash": "1234abcd", "io.kubernetes.container.restartCount": "0" },
      image_id: "sha256:" + "b".repeat(64),
    })),
  };
}

// ---- per-message generated decoders: one function per type, a switch on the tag.
const SCALAR_READ: Record<string, string> = {
  string: "str(r)", bool: "(vi(r), r.lo !== 0)", int32: "(vi(r), r.lo | 0)", uint32: "(vi(r), r.lo)", int64: "(vi(r), i64(r))", uint64: "(vi(r), u64(r))",
  double: "(r.pos += 8, r.view.getFloat64(r.pos - 8, true))", bytes: "byt(r)",
};
const WIRE: Record<string, number> = { string: 2, bytes: 2, double: 1, float: 5 };
async function generatedDecoders(): Promise<Record<string, (b: Buffer) => unknown>> {
  const fn = (n: string) => "d_" + n.replace(/\./g, "_");
  const src: string[] = [];
  for (const [name, fields] of Object.entries(MESSAGES)) {
    const defaults = fields.map(([f, , t, mode]) => `${JSON.stringify(f)}: ${mode === 1 ? "[]" : mode === 2 ? "{}" : t in SCALAR_READ || t in ENUMS ? (t === "string" ? '""' : t === "bool" ? "false" : t.endsWith("64") ? "0n" : t === "bytes" ? "Buffer.alloc(0)" : "0") : "null"}`);
    const cases = fields.map(([f, no, t, mode]) => {
      const isMsg = !(t in SCALAR_READ) && !(t in ENUMS);
      const read = isMsg ? `${fn(t)}(r, dl(r), null)` : ENUMS[t] ? SCALAR_READ.int32 : SCALAR_READ[t] ?? "(()=>{throw new Error('kind')})()";
      const wire = isMsg ? 2 : WIRE[t] ?? 0;
      const key = JSON.stringify(f);
      if (mode === 2) return `case ${no}: { const e = dl(r), o2 = r.end; r.end = e; let k = "", v = ${isMsg ? "null" : '""'}; while (r.pos < e) { const t2 = vi32(r); if (t2 === 10) k = str(r); else if (t2 === ${(2 << 3) | wire}) v = ${read}; else skip(r, t2); } r.end = o2; o[${key}][k] = v; break; }`;
      if (mode === 1) return `case ${no}: if ((t & 7) === ${wire}) o[${key}].push(${read}); else if ((t & 7) === 2) { const e = dl(r); while (r.pos < e) o[${key}].push(${read}); } else skip(r, t); break;`;
      return `case ${no}: if ((t & 7) === ${wire}) o[${key}] = ${read}; else skip(r, t); break;`;
    });
    src.push(`function ${fn(name)}(r, end, o) { o = o || {${defaults.join(", ")}}; const outer = r.end; r.end = end; while (r.pos < end) { const t = vi32(r); switch (t >>> 3) { ${cases.join(" ")} default: skip(r, t); } } r.end = outer; return o; }`);
  }
  const helpers = `
    function vi(r) { let lo = 0, hi = 0, s = 0; for (let i = 0; i < 10; i++) { const b = r.buf[r.pos++]; if (r.pos > r.end) throw new RangeError("eof"); if (i < 4) lo |= (b & 127) << s; else if (i === 4) { lo |= (b & 15) << 28; hi = (b & 127) >>> 4; } else hi |= (b & 127) << (s - 32); s += 7; if (b < 128) { r.lo = lo >>> 0; r.hi = hi >>> 0; return; } } throw new Error("varint"); }
    function vi32(r) { vi(r); return r.lo; }
    function dl(r) { vi(r); const e = r.pos + r.lo; if (e > r.end) throw new RangeError("len"); return e; }
    function str(r) { const e = dl(r); const s = r.buf.toString("utf8", r.pos, e); r.pos = e; return s; }
    function byt(r) { const e = dl(r); const b = Buffer.from(r.buf.subarray(r.pos, e)); r.pos = e; return b; }
    function i64(r) { return r.hi < 0x200000 ? BigInt(r.hi * 4294967296 + r.lo) : BigInt.asIntN(64, (BigInt(r.hi) << 32n) | BigInt(r.lo)); }
    function u64(r) { return r.hi < 0x200000 ? BigInt(r.hi * 4294967296 + r.lo) : (BigInt(r.hi) << 32n) | BigInt(r.lo); }
    function skip(r, t) { switch (t & 7) { case 0: vi(r); break; case 1: r.pos += 8; break; case 2: r.pos = dl(r); break; case 5: r.pos += 4; break; default: throw new Error("wire"); } }`;
  const body = `${helpers}\n${src.join("\n")}\nreturn { ${Object.keys(MESSAGES).map((n) => `${JSON.stringify(n)}: (b) => ${fn(n)}({ buf: b, pos: 0, end: b.length, lo: 0, hi: 0, view: new DataView(b.buffer, b.byteOffset, b.byteLength) }, b.length, null)`).join(", ")} };`;
  const file = "/tmp/crib-generated-decoders.js";
  await Bun.write(file, `export function decoders(Buffer) {${body}}\n`);
  const built = await Bun.build({ entrypoints: [file], minify: true, target: "bun" });
  const minified = (await built.outputs[0]!.text()).length;
  console.log(`per-message generated decoders: ${body.length} bytes of source, ${minified} minified (${Object.keys(MESSAGES).length} types, decode only, 8 scalar kinds)`);
  return new Function("Buffer", body)(Buffer) as Record<string, (b: Buffer) => unknown>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(label: string, iterations: number, fn: () => void): void {
  for (let i = 0; i < Math.max(3, iterations / 10); i++) fn();
  const rounds: number[] = [];
  for (let round = 0; round < 15; round++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    rounds.push(((performance.now() - t0) * 1000) / iterations);
  }
  const s = [...rounds].sort((a, b) => a - b);
  console.log(`${label.padEnd(58)} median ${median(rounds).toFixed(2).padStart(9)} µs  (min ${s[0]!.toFixed(2)}, max ${s[s.length - 1]!.toFixed(2)})`);
}

const generated = await generatedDecoders();
const cases: [string, object, number][] = [["runtime.v1.ListContainersResponse", listContainers(500), 20], ["runtime.v1.VersionRequest", { version: "v1" }, 20000]];
for (const [name, value, n] of cases) {
  const ref = criType(name);
  const codec = codecFor(name);
  const bytes = encodeMessage(ref, value);
  const gen = generated[name]!;
  if (!Bun.deepEquals(gen(bytes), codec.decode(bytes))) throw new Error("generated decoder disagrees");
  console.log(`\n${name}: ${bytes.length} bytes`);
  time("decode  protobuf.js (decode + toObject)", n, () => decodeMessage(ref, bytes));
  time("decode  table-driven (wire_codec.ts)", n, () => codec.decode(bytes));
  time("decode  per-message generated functions", n, () => gen(bytes));
  time("encode  protobuf.js (fromObject + encode)", n, () => encodeMessage(ref, value));
  time("encode  table-driven (wire_codec.ts)", n, () => codec.encode(value));
}
