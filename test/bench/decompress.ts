// Layer unpacking throughput. Part 1, decompression: every way Bun offers to stream
// gzip and zstd, plus one-shot calls as a ceiling, plus the zstd-napi addon when it
// is installed in /tmp/zbench (`npm i --prefix /tmp/zbench zstd-napi`; never in the
// project: its loader is not embedded by `bun build --compile`).
//
// Input: a ~100 MB tar of real files from /usr (binaries, libraries, text), gzip'ed
// at level 6 (what docker/buildkit write) and zstd'ed at level 3, fed in 256 KiB
// chunks as a blob read from disk would be. Figures are MB of uncompressed output
// per second, best of a few runs.
//
// Part 2, applyLayer end to end (decompress + hash + parse + write, as root): a
// busybox-like layer (one binary, ~400 hardlinks), 100 MB of random files, and the
// real /usr tar; MB/s of uncompressed layer, into a temp dir on the same disk.
//
//   node_modules/.bin/bun test/bench/decompress.ts [sizeMB] [decompress|apply] [dir]
//
// `dir` is where layers are unpacked (default: os.tmpdir()); /dev/shm shows the
// CPU side alone.

import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { readdirSync, readFileSync, lstatSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { applyLayer, type Compression } from "../../src/image/layer/apply.ts";
import { setLogSink } from "../../src/log/logger.ts";
import { Readable, type Transform } from "node:stream";
import zlib from "node:zlib";
import { decompressStream } from "../../src/image/layer/decompress.ts";
import { tarBytes, type TarEntry } from "../helpers/tar.ts";

const targetMB = Number(process.argv[2] ?? "100");
const part = process.argv[3] ?? "all";
const applyDir = process.argv[4] ?? tmpdir();
const CHUNK = 256 * 1024;
const RUNS = 5;

/** A tar of real files from /usr, about `mb` MB. */
function realTar(mb: number): Uint8Array {
  const entries: TarEntry[] = [];
  let total = 0;
  const limit = mb * 1024 * 1024;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (total >= limit) return;
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        entries.push({ type: "dir", path: p.slice(1) + "/" });
        walk(p);
      } else if (st.isFile() && st.size < 32 * 1024 * 1024) {
        const data = readFileSync(p);
        entries.push({ type: "file", path: p.slice(1), data, mode: st.mode & 0o7777 });
        total += data.length;
      }
    }
  };
  for (const root of ["/usr/lib", "/usr/bin", "/usr/share"]) walk(root);
  return tarBytes(entries);
}

function chunks(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < buf.length; off += CHUNK) out.push(buf.subarray(off, off + CHUNK));
  return out;
}

async function drainAsync(it: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const c of it) n += c.length;
  return n;
}

async function viaNodeTransform(input: Uint8Array[], t: Transform): Promise<number> {
  Readable.from(input).pipe(t);
  return drainAsync(t as AsyncIterable<Uint8Array>);
}

async function viaWebStream(input: Uint8Array[], format: "gzip" | "zstd"): Promise<number> {
  const src = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      const c = input.shift();
      if (c === undefined) ctrl.close();
      else ctrl.enqueue(c);
    },
  });
  const ds = new DecompressionStream(format) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
  return drainAsync(src.pipeThrough(ds));
}

type Candidate = { name: string; run: (compressed: Uint8Array) => Promise<number> };

async function measure(label: string, expected: number, compressed: Uint8Array, cands: Candidate[]): Promise<void> {
  console.log(`\n${label}: ${(compressed.length / 1e6).toFixed(1)} MB compressed -> ${(expected / 1e6).toFixed(1)} MB`);
  for (const c of cands) {
    let best = Infinity;
    let err = "";
    for (let i = 0; i < RUNS; i++) {
      Bun.gc(true);
      const t0 = performance.now();
      try {
        const n = await c.run(compressed);
        if (n !== expected) throw new Error(`produced ${n} bytes, expected ${expected}`);
      } catch (e) {
        err = e instanceof Error ? e.message : String(e);
        break;
      }
      best = Math.min(best, performance.now() - t0);
    }
    const figure = err ? `failed: ${err}` : `${(expected / 1e6 / (best / 1000)).toFixed(0).padStart(5)} MB/s  (${best.toFixed(0)} ms)`;
    console.log(`  ${c.name.padEnd(46)} ${figure}`);
  }
}

interface ZstdNapi {
  DecompressStream: new () => Transform;
  decompress: (b: Uint8Array) => Uint8Array;
}

function loadZstdNapi(): ZstdNapi | undefined {
  try {
    const req = createRequire("/tmp/zbench/package.json");
    return req("zstd-napi") as ZstdNapi;
  } catch {
    return undefined;
  }
}

const tar = realTar(targetMB);
const gzipped = (b: Uint8Array): Uint8Array => zlib.gzipSync(b, { level: 6 });
const zstded = (b: Uint8Array): Uint8Array => zlib.zstdCompressSync(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
const gz = gzipped(tar);
const zst = zstded(tar);

if (part === "all" || part === "decompress") await decompressBench();
if (part === "all" || part === "apply") await applyBench();

async function decompressBench(): Promise<void> {
await measure("gzip (level 6)", tar.length, gz, [
  { name: "node:zlib createGunzip (stream)", run: (b) => viaNodeTransform(chunks(b), zlib.createGunzip()) },
  { name: "node:zlib createGunzip chunkSize=256K", run: (b) => viaNodeTransform(chunks(b), zlib.createGunzip({ chunkSize: 256 * 1024 })) },
  { name: "node:zlib createGunzip chunkSize=1M", run: (b) => viaNodeTransform(chunks(b), zlib.createGunzip({ chunkSize: 1024 * 1024 })) },
  { name: "DecompressionStream('gzip') (web stream)", run: (b) => viaWebStream(chunks(b), "gzip") },
  { name: "crib decompressStream('gzip')", run: (b) => drainAsync(decompressStream(chunks(b), "gzip")) },
  { name: "Bun.gunzipSync (one-shot, not a stream)", run: async (b) => Bun.gunzipSync(b as Uint8Array<ArrayBuffer>).length },
  { name: "zlib.gunzipSync (one-shot, not a stream)", run: async (b) => zlib.gunzipSync(b).length },
]);

const napi = loadZstdNapi();
const zstdCands: Candidate[] = [
  { name: "node:zlib createZstdDecompress (stream)", run: (b) => viaNodeTransform(chunks(b), zlib.createZstdDecompress()) },
  { name: "node:zlib createZstdDecompress chunkSize=256K", run: (b) => viaNodeTransform(chunks(b), zlib.createZstdDecompress({ chunkSize: 256 * 1024 })) },
  { name: "node:zlib createZstdDecompress chunkSize=1M", run: (b) => viaNodeTransform(chunks(b), zlib.createZstdDecompress({ chunkSize: 1024 * 1024 })) },
  { name: "DecompressionStream('zstd') (web stream)", run: (b) => viaWebStream(chunks(b), "zstd") },
  { name: "crib decompressStream('zstd')", run: (b) => drainAsync(decompressStream(chunks(b), "zstd")) },
  { name: "Bun.zstdDecompress (one-shot async)", run: async (b) => (await Bun.zstdDecompress(b)).length },
  { name: "Bun.zstdDecompressSync (one-shot)", run: async (b) => Bun.zstdDecompressSync(b).length },
];
if (napi) {
  zstdCands.push(
    { name: "zstd-napi DecompressStream (stream)", run: (b) => viaNodeTransform(chunks(b), new napi.DecompressStream()) },
    { name: "zstd-napi decompress (one-shot)", run: async (b) => napi.decompress(b).length },
  );
} else {
  console.log("\n(zstd-napi not installed in /tmp/zbench: skipped)");
}
await measure("zstd (level 3)", tar.length, zst, zstdCands);
}

function busyboxTar(): Uint8Array {
  const applets = spawnSync("/bin/busybox", ["--list-full"]).stdout.toString().split("\n").filter((l) => l !== "");
  const entries: TarEntry[] = [];
  for (const d of ["bin/", "sbin/", "usr/", "usr/bin/", "usr/sbin/", "etc/", "root/", "tmp/", "var/", "var/spool/", "var/spool/mail/", "home/"]) {
    entries.push({ type: "dir", path: d, mode: d === "tmp/" ? 0o1777 : 0o755 });
  }
  entries.push({ type: "file", path: "bin/busybox", data: readFileSync("/bin/busybox"), mode: 0o755 });
  for (const a of applets) if (a !== "bin/busybox") entries.push({ type: "hardlink", path: a, target: "bin/busybox" });
  entries.push({ type: "file", path: "etc/passwd", data: "root:x:0:0:root:/root:/bin/sh\n" });
  entries.push({ type: "file", path: "etc/group", data: "root:x:0:\n" });
  return tarBytes(entries);
}

function randomTar(mb: number): Uint8Array {
  const entries: TarEntry[] = [{ type: "dir", path: "data/" }];
  for (let i = 0; i < mb; i++) entries.push({ type: "file", path: `data/f${i}`, data: randomBytes(1024 * 1024) });
  return tarBytes(entries);
}

async function applyBench(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log("\napply: needs root (chown, mknod), skipped");
    return;
  }
  setLogSink(() => undefined);
  const layers: Array<[string, Uint8Array]> = [
    ["busybox-like", busyboxTar()],
    [`random files (${targetMB} x 1 MiB)`, randomTar(targetMB)],
    ["real /usr files", tar],
  ];
  console.log(`\napplyLayer (decompress + sha256 + tar + write) into ${applyDir}, best of 3`);
  for (const [label, layerTar] of layers) {
    const entries = (await applyOnce(layerTar, "none")).entries;
    console.log(`  ${label}: ${(layerTar.length / 1e6).toFixed(1)} MB, ${entries} entries`);
    for (const c of ["none", "gzip", "zstd"] as const) {
      const data = c === "gzip" ? gzipped(layerTar) : c === "zstd" ? zstded(layerTar) : layerTar;
      let best = Infinity;
      for (let i = 0; i < 3; i++) best = Math.min(best, (await applyOnce(data, c)).ms);
      const mbs = layerTar.length / 1e6 / (best / 1000);
      console.log(`    ${c.padEnd(5)} ${mbs.toFixed(0).padStart(5)} MB/s  ${(entries / (best / 1000)).toFixed(0).padStart(7)} entries/s  (${best.toFixed(0)} ms)`);
    }
  }
}

async function applyOnce(data: Uint8Array, c: Compression): Promise<{ ms: number; entries: number }> {
  const dir = mkdtempSync(join(applyDir, "crib-bench-layer-"));
  try {
    Bun.gc(true);
    const t0 = performance.now();
    const r = await applyLayer(chunks(data), c, dir);
    return { ms: performance.now() - t0, entries: r.entries };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
