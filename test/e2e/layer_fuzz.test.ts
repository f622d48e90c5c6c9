// The layer applier against seeded random tar streams: valid tars built from a
// pool of ordinary and hostile entries (names with "..", absolute paths,
// symlinks to the host, hardlinks, devices, whiteouts), then mutated (bytes
// flipped, header fields overwritten with their checksum fixed so the damage
// reaches past the checksum, blocks cut, repeated or inserted), optionally
// compressed and cut into random chunks. Every apply must succeed or fail with
// a CribError, never hang, never touch anything outside its target directory,
// and memory must stay bounded. Root (chown, mknod). Seeded: the seed is
// printed and CRIB_SEED replays it; CRIB_STRESS=1 runs 10x the cases.
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { CribError } from "../../src/errors.ts";
import { applyLayer, type Compression } from "../../src/image/layer/apply.ts";
import { setLogSink } from "../../src/log/logger.ts";
import { Rng, stressFactor, testSeed } from "../helpers/stress.ts";
import { tarBytes, type TarEntry } from "../helpers/tar.ts";

const CASES = 400 * stressFactor();
const HANG_MS = 20_000;
const isRoot = process.getuid?.() === 0;
const MiB = 1024 * 1024;

setLogSink(() => undefined); // the writer's warnings about refused entries

const workDir = mkdtempSync(join(tmpdir(), "crib-layer-fuzz-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** A bed: base/{sentinel/{victim,sub/inner}, outside} around the target base/layer. */
function bed(i: number): { base: string; target: string } {
  const base = join(workDir, `case-${i}`);
  mkdirSync(join(base, "sentinel", "sub"), { recursive: true });
  writeFileSync(join(base, "sentinel", "victim"), "precious");
  writeFileSync(join(base, "sentinel", "sub", "inner"), "inner");
  writeFileSync(join(base, "outside"), "outside");
  mkdirSync(join(base, "layer"));
  return { base, target: join(base, "layer") };
}

/** Everything under `base` except `skip`: names, types, modes, owners, sizes, contents, link targets. */
function snapshot(base: string, skip: string): string {
  const h = createHash("sha256");
  const walk = (p: string): void => {
    const st = lstatSync(p);
    h.update(`${p}\0${st.mode}\0${st.uid}:${st.gid}\0${st.size}\0${st.mtimeMs}\0${st.nlink}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isFile()) h.update(readFileSync(p));
    else if (st.isDirectory()) for (const n of readdirSync(p).sort()) if (join(p, n) !== skip) walk(join(p, n));
  };
  walk(base);
  return h.digest("hex");
}

/** Entry names: mostly ordinary (so applies get deep), sometimes hostile. */
function names(rng: Rng, base: string): string {
  if (rng.chance(0.85)) {
    return rng.pick([
      "a", "a/b", "a/b/c", "b", "bin/sh", "etc/passwd", "dir/", "link", "hl", "./a", "dev/null", "fifo", "a//b", "a/./b", "😀/ü",
      ".wh.a", "a/.wh..wh..opq", "f0", "f1", `long/${"n".repeat(120)}/${"f".repeat(120)}`, "x".repeat(255),
    ]);
  }
  return rng.pick([
    ".", "..", "../outside", "../sentinel/victim", "a/../../outside", "/etc/x", "/../x", `${base}/sentinel/victim`, "link/victim",
    "link/sub/inner", ".wh..wh..opq", ".wh...", "a/b/../../../sentinel/sub/inner",
  ]);
}

function randomEntries(rng: Rng, base: string): TarEntry[] {
  const out: TarEntry[] = [];
  for (let n = rng.range(1, 12); n > 0; n--) {
    const path = names(rng, base);
    switch (rng.int(8)) {
      case 0:
        out.push({ type: "dir", path, mode: rng.pick([0o755, 0o700, 0o1777, 0o4755, 0o000]), uid: rng.pick([0, 1000, 65534]) });
        break;
      case 1:
      case 2:
        out.push({ type: "file", path, data: rng.bytes(rng.pick([0, 1, 511, 512, 513, 4000])), mode: rng.pick([0o644, 0o4755, 0o000, 0o777]), uid: rng.pick([0, 1000]), gid: rng.pick([0, 1000]), ...(rng.chance(0.2) ? { xattrs: { "user.x": "y", "trusted.overlay.opaque": "y" } } : {}) });
        break;
      case 3:
        out.push({ type: "symlink", path, target: rng.pick(["/", "..", "../..", `${base}/sentinel`, `${base}/sentinel/victim`, "a", "link", "/etc/passwd", "../../../../"]) });
        break;
      case 4:
        out.push({ type: "hardlink", path, target: names(rng, base) });
        break;
      case 5:
        out.push({ type: rng.pick(["char", "block"] as const), path, major: rng.pick([1, 8, 0]), minor: rng.pick([3, 0, 5]) });
        break;
      case 6:
        out.push({ type: "fifo", path });
        break;
      default:
        out.push({ type: "file", path: `f${rng.int(5)}`, data: "plain" });
    }
  }
  return out;
}

/** Recompute a 512-byte ustar header's checksum in place. */
function fixChecksum(tar: Uint8Array, at: number): void {
  if (at + 512 > tar.length) return;
  tar.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += tar[i]!;
  tar.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), at + 148);
}

/** Header offsets: walk the archive by the size fields (before any mutation). */
function headerOffsets(tar: Uint8Array): number[] {
  const out: number[] = [];
  let at = 0;
  while (at + 512 <= tar.length) {
    if (tar.subarray(at, at + 512).every((b) => b === 0)) break;
    out.push(at);
    const size = parseInt(new TextDecoder().decode(tar.subarray(at + 124, at + 135)).replace(/\0.*$/, "").trim() || "0", 8) || 0;
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function mutate(rng: Rng, tar: Uint8Array): Uint8Array {
  let t: Uint8Array = new Uint8Array(tar);
  const headers = headerOffsets(t);
  for (let n = rng.int(4); n > 0; n--) {
    switch (rng.int(6)) {
      case 0: // flip bytes anywhere
        for (let k = rng.range(1, 8); k > 0; k--) t[rng.int(t.length)] = rng.int(256);
        break;
      case 1: // overwrite a header field, checksum fixed so the reader takes it
      case 2: {
        if (headers.length === 0) break;
        const h = rng.pick(headers);
        const [off, len] = rng.pick([[0, 100], [100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [156, 1], [157, 100], [329, 8], [337, 8], [345, 155]] as const);
        const value = rng.pick([
          () => rng.bytes(len),
          () => new TextEncoder().encode(rng.pick(["77777777777", "00000001000", "-1", "99999999999", "\x80\x00\x00\x00\x00\x00\x00\x00\x7f\xff\xff\xff"]).padEnd(len, "\0").slice(0, len)),
          () => new TextEncoder().encode(rng.pick(["0", "1", "2", "3", "4", "5", "6", "7", "x", "g", "L", "K", "S", "D", "V"]).padEnd(len, "\0").slice(0, len)),
          () => new TextEncoder().encode(rng.pick(["../../outside", "/etc/shadow", "..", "sentinel/victim"]).padEnd(len, "\0").slice(0, len)),
        ])();
        if (h + off + len <= t.length) t.set(value.subarray(0, len), h + off);
        fixChecksum(t, h);
        break;
      }
      case 3: // cut
        t = t.subarray(0, rng.int(t.length + 1));
        break;
      case 4: { // repeat a block range
        const at = rng.int(Math.max(1, t.length / 512)) * 512;
        const piece = t.subarray(at, at + 512 * rng.range(1, 4));
        const next = new Uint8Array(t.length + piece.length);
        next.set(t.subarray(0, at));
        next.set(piece, at);
        next.set(t.subarray(at), at + piece.length);
        t = next;
        break;
      }
      default: { // insert junk
        const at = rng.int(t.length + 1);
        const junk = rng.bytes(rng.pick([1, 100, 512, 3000]));
        const next = new Uint8Array(t.length + junk.length);
        next.set(t.subarray(0, at));
        next.set(junk, at);
        next.set(t.subarray(at), at + junk.length);
        t = next;
        break;
      }
    }
  }
  return t;
}

function chunks(rng: Rng, data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; ) {
    const n = rng.pick([1, 7, 512, 4096, 65536, data.length]);
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe.skipIf(!isRoot)("layer applier fuzz", () => {
  test(`${CASES} mutated tar streams: success or a CribError, nothing outside the target touched, no hang`, async () => {
    const rng = new Rng(testSeed("layer fuzz"));
    Bun.gc(true);
    const rssBefore = process.memoryUsage().rss;
    const outcomes = new Map<string, number>();
    const internals: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const { base, target } = bed(i);
      const before = snapshot(base, target);
      const entries = randomEntries(rng, base);
      const tar = rng.chance(0.85) ? mutate(rng, tarBytes(entries)) : tarBytes(entries);
      const compression: Compression = rng.pick(["none", "none", "none", "gzip", "zstd"] as const);
      let data: Uint8Array = tar;
      if (compression === "gzip") data = zlib.gzipSync(tar);
      if (compression === "zstd") data = zlib.zstdCompressSync(tar);
      if (compression !== "none" && rng.chance(0.3)) data = mutate(rng, data); // damage in the compressed stream too
      const what = `case ${i} (${compression}, ${tar.length} bytes; entries ${JSON.stringify(entries.map((e) => `${e.type}:${e.path}${"target" in e ? `->${e.target}` : ""}`))})`;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hang = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: applyLayer did not finish within ${HANG_MS} ms`)), HANG_MS);
      });
      let outcome: string;
      try {
        await Promise.race([applyLayer(chunks(rng, data), compression, target, { maxBytes: 32 * MiB, maxEntries: 10_000 }), hang]);
        outcome = "applied";
      } catch (e) {
        if (!(e instanceof CribError)) throw new Error(`${what}: failed with a ${e instanceof Error ? e.constructor.name : typeof e}, not a CribError: ${String(e)}`);
        outcome = e.kind;
        if (e.kind === "internal") internals.push(`${what}: ${e.message.slice(0, 300)}`);
      } finally {
        clearTimeout(timer);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      expect(snapshot(base, target), `${what}: something outside the target changed`).toBe(before);
      rmSync(base, { recursive: true, force: true });
    }
    Bun.gc(true);
    const growth = process.memoryUsage().rss - rssBefore;
    console.log(`layer fuzz: ${CASES} cases: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(", ")}; RSS growth ${(growth / MiB).toFixed(1)} MiB`);
    expect(growth).toBeLessThan(256 * MiB);
    // A damaged layer is the image's fault (INVALID_ARGUMENT), not an internal error of crib.
    expect(internals).toEqual([]);
  }, 300_000 * stressFactor());
});
