// What crib costs a small node, beside Debian's containerd measured in the same run:
//
//   binaries   what is copied to a node: dist/crib vs containerd + its runc shim
//              (runc itself is needed by both and left out), raw and compressed
//   idle       daemon RSS and PSS 3 s after start-up, no pods
//   start-up   restarts on an initialised root: spawn to the first answered CRI Version
//   store      disk used by the image store after pulling N images that share
//              their base layers: du -sb of each root, without their temp dirs
//              (crib: ingest/; containerd: content ingest/ and tmpmounts/)
import { copyFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CriClient } from "../../src/ctl/client.ts";
import { requireBinary, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, randomLayer, type PushedImage } from "../helpers/images.ts";
import type { TestRegistry } from "../helpers/registry.ts";
import { CONTAINERD_BIN, startContainerd } from "./containerd.ts";
import type { BenchContext, Benchmark } from "./run.ts";
import { fmt, ratio, readProcStatus, readSmapsRollup, summarize, type Table } from "./stats.ts";

const DEFAULT_RUNS = 7;
/** Idle memory is read this long after the daemon answered its first Version. */
const SETTLE_MS = 3000;
export const POLL_MS = 5;
const STORE_IMAGES = 5;
const SHARED_LAYER_BYTES = 8 * 1024 * 1024;
const UNIQUE_LAYER_BYTES = 512 * 1024;
const SHIM_BIN = "/usr/bin/containerd-shim-runc-v2";
/** What containerd ships to a node besides runc (which crib needs as well): present files only. */
export const CONTAINERD_FILES = [CONTAINERD_BIN, SHIM_BIN].filter((f) => existsSync(f));
const MiB = 1024 * 1024;

export type RuntimeName = "containerd" | "crib";

function mib(bytes: number | undefined): string {
  return fmt(bytes === undefined ? undefined : bytes / MiB, 1);
}

/** Size of `files` together, raw and compressed (gzip default level, zstd level 3). */
async function binarySizes(files: string[]): Promise<{ raw: number; gzip: number; zstd: number }> {
  let raw = 0;
  let gzip = 0;
  let zstd = 0;
  for (const f of files) {
    const bytes = new Uint8Array(await Bun.file(f).arrayBuffer());
    raw += bytes.length;
    gzip += Bun.gzipSync(bytes).length;
    zstd += Bun.zstdCompressSync(bytes, { level: 3 }).length;
  }
  return { raw, gzip, zstd };
}

/** Bytes under `dir` (du -sb: apparent sizes, hard links once), without the excluded names. */
function duBytes(dir: string, exclude: string[]): number {
  const r = Bun.spawnSync(["du", "-sb", ...exclude.map((e) => `--exclude=${e}`), dir], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`du -sb ${dir} failed: ${r.stderr.toString()}`);
  return Number(r.stdout.toString().split("\t")[0]);
}

interface Started {
  proc: ReturnType<typeof Bun.spawn>;
  ms: number;
}

/** Whether the daemon on `socket` answers a CRI Version call (a new client per try). */
async function answersVersion(socket: string): Promise<boolean> {
  const client = new CriClient(`unix://${socket}`);
  try {
    await client.call("RuntimeService", "Version", { version: "v1" }, { timeoutMs: 1000 });
    return true;
  } catch {
    return false; // not serving yet (or a stale socket file)
  } finally {
    client.close();
  }
}

/**
 * Spawn `argv` and time it to the first answer of `answers` (by default a CRI Version
 * call). The socket file is polled every POLL_MS and each try uses a new client (a
 * client that failed to connect would wait out gRPC's reconnect backoff, about a second).
 */
export async function timedStart(argv: string[], socket: string, what: string, answers: (socket: string) => Promise<boolean> = answersVersion): Promise<Started> {
  const t0 = performance.now();
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  for (;;) {
    if (existsSync(socket) && (await answers(socket))) return { proc, ms: performance.now() - t0 };
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) before answering`);
    if (performance.now() - t0 > 30_000) {
      proc.kill("SIGKILL");
      throw new Error(`${what} did not answer within 30 s`);
    }
    await Bun.sleep(POLL_MS);
  }
}

async function stopProc(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(15_000).then(() => false)]);
  if (!done) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/** Start-up times (restarts on one root, as systemd restarts a node's runtime) and idle memory after the last. */
export interface StartFigures {
  ms: number[];
  rssKiB?: number;
  pssKiB?: number;
  /** Anonymous (heap, stacks) part of RSS: what the file-backed binary pages are not. */
  anonKiB?: number;
}

/** A restart loop for one runtime: `argv` on the dirs `prepare` made. */
async function restarts(what: string, argv: string[], socket: string, runs: number): Promise<StartFigures> {
  const out: StartFigures = { ms: [] };
  for (let i = 0; i < runs; i++) {
    const s = await timedStart(argv, socket, what);
    try {
      out.ms.push(s.ms);
      if (i === runs - 1) {
        await Bun.sleep(SETTLE_MS);
        const m = readSmapsRollup(s.proc.pid!);
        out.rssKiB = m?.rss;
        out.pssKiB = m?.pss;
        out.anonKiB = readProcStatus(s.proc.pid!)?.rssAnon;
      }
    } finally {
      await stopProc(s.proc);
    }
  }
  return out;
}

/** crib from a private copy of the binary (so its PSS is not shared with other crib processes). */
async function cribRestarts(ctx: BenchContext, runs: number): Promise<StartFigures> {
  const t = tempConfig({ log: { level: "warn" } });
  const bin = join(t.dir, "crib-bin");
  copyFileSync(requireBinary(), bin);
  const release = async () => rmSync(t.dir, { recursive: true, force: true });
  const untrack = ctx.track("crib (footprint)", release);
  try {
    // One start first, so both runtimes' timed starts find an initialised root.
    await stopProc((await timedStart([bin, "serve", "--config", t.configPath], t.socket, "crib")).proc);
    return await restarts("crib", [bin, "serve", "--config", t.configPath], t.socket, runs);
  } finally {
    await release();
    untrack();
  }
}

/** containerd: startContainerd writes its dirs and config and starts it once; the timed restarts reuse them. */
async function containerdRestarts(ctx: BenchContext, runs: number): Promise<StartFigures> {
  const c = await startContainerd();
  const untrack = ctx.track("containerd (footprint)", c.stop);
  try {
    process.kill(c.pid, "SIGTERM");
    for (let i = 0; i < 750 && existsSync(`/proc/${c.pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${c.pid}/status`, "utf8")); i++) await Bun.sleep(20);
    return await restarts("containerd", [CONTAINERD_BIN, "--config", c.configPath], c.socket, runs);
  } finally {
    await c.stop();
    untrack();
  }
}

async function pushStoreImages(reg: TestRegistry, ctx: BenchContext): Promise<PushedImage[]> {
  ctx.log(`footprint: pushing ${STORE_IMAGES} images that share busybox and an ${SHARED_LAYER_BYTES / MiB} MiB layer`);
  const shared = randomLayer(SHARED_LAYER_BYTES, 4242);
  const out: PushedImage[] = [];
  for (let i = 0; i < STORE_IMAGES; i++) {
    out.push(await pushImage(reg, `bench/footprint:v${i}`, { layers: [busyboxLayer(), shared, randomLayer(UNIQUE_LAYER_BYTES, 5000 + i)] }));
  }
  return out;
}

/** Pull every image into a fresh daemon; du of its store. */
async function storeBytes(runtime: RuntimeName, images: PushedImage[], reg: TestRegistry, ctx: BenchContext): Promise<number> {
  const pullAll = async (client: CriClient) => {
    for (const img of images) await client.call("ImageService", "PullImage", { image: { image: img.ref } }, { timeoutMs: 300_000 });
  };
  if (runtime === "containerd") {
    const c = await startContainerd({ registryHosts: [reg.host] });
    const untrack = ctx.track("containerd (footprint store)", c.stop);
    try {
      await pullAll(c.client);
      Bun.spawnSync(["sync"]);
      return duBytes(c.root, ["ingest", "tmpmounts"]);
    } finally {
      await c.stop();
      untrack();
    }
  }
  const c = await startCrib({ log: { level: "info" }, registries: { mirrors: { [reg.host]: { endpoint: [`http://${reg.host}`] } } } });
  const release = async () => {
    if (c.proc.exitCode === null) await c.stop();
    c.cleanup();
  };
  const untrack = ctx.track("crib (footprint store)", release);
  try {
    await pullAll(c.client);
    Bun.spawnSync(["sync"]);
    return duBytes(c.root, ["ingest"]);
  } finally {
    await release();
    untrack();
  }
}

/**
 * Start-up (`runs` restarts each, containerd first) and the idle memory of each
 * runtime's last start, SETTLE_MS after it answered.
 */
export async function measureStartup(ctx: BenchContext, runs: number): Promise<Record<RuntimeName, StartFigures>> {
  ctx.log(`footprint: ${runs} restarts of containerd, then of crib`);
  const containerd = await containerdRestarts(ctx, runs);
  return { containerd, crib: await cribRestarts(ctx, runs) };
}

export const footprintBenchmark: Benchmark = {
  name: "footprint",
  description: "binary size, idle daemon RSS/PSS, start-up to a ready socket, store disk use for images sharing layers",
  async run(ctx: BenchContext): Promise<Table[]> {
    const runs = ctx.runs ?? DEFAULT_RUNS;
    const tables: Table[] = [];

    // Binaries.
    const ctdFiles = CONTAINERD_FILES;
    const ctd = await binarySizes(ctdFiles);
    const crib = ctx.cribBuilt ? await binarySizes([requireBinary()]) : undefined;
    tables.push({
      title: "footprint: binaries copied to a node (MiB)",
      headers: ["runtime", "files", "raw", "gzip", "zstd -3"],
      rows: [
        ["containerd", String(ctdFiles.length), mib(ctd.raw), mib(ctd.gzip), mib(ctd.zstd)],
        crib ? ["crib", "1", mib(crib.raw), mib(crib.gzip), mib(crib.zstd)] : ["crib", "not built (npm run build)"],
      ],
      notes: [`containerd: ${ctdFiles.join(" + ")}; runc, which both need, is not counted`],
    });
    if (!ctx.cribBuilt) return tables;

    // Start-up and idle memory.
    const figures = await measureStartup(ctx, runs);
    const startMs = { containerd: figures.containerd.ms, crib: figures.crib.ms };
    const idle = figures;
    const st = { containerd: summarize(startMs.containerd), crib: summarize(startMs.crib) };
    tables.push({
      title: `footprint: start-up to a ready socket (ms, ${runs} runs each)`,
      headers: ["runtime", "median", "min", "max", "vs containerd"],
      rows: (["containerd", "crib"] as const).map((r) => [r, fmt(st[r].median, 0), fmt(st[r].min, 0), fmt(st[r].max, 0), ratio(st[r].median, st.containerd.median)]),
      notes: [`restarts on an initialised root (as systemd restarts a node's runtime): spawn to the first answered CRI Version, polled every ${POLL_MS} ms`],
    });
    const kib = (r: RuntimeName, k: "rssKiB" | "pssKiB" | "anonKiB") => idle[r]?.[k];
    tables.push({
      title: `footprint: idle daemon, no pods (MiB, ${SETTLE_MS / 1000} s after start-up)`,
      headers: ["runtime", "RSS", "of it anon", "PSS", "PSS vs containerd"],
      rows: (["containerd", "crib"] as const).map((r) => [
        r,
        fmt((kib(r, "rssKiB") ?? NaN) / 1024, 1),
        fmt((kib(r, "anonKiB") ?? NaN) / 1024, 1),
        fmt((kib(r, "pssKiB") ?? NaN) / 1024, 1),
        ratio(kib(r, "pssKiB"), kib("containerd", "pssKiB")),
      ]),
      notes: ["crib runs from a private copy of dist/crib, so its PSS is not shared with other crib processes"],
    });

    // Store disk use.
    const reg = await ctx.registry();
    const images = await pushStoreImages(reg, ctx);
    const uniqueBytes = images.reduce((a, img) => a + img.size, 0);
    const bytes = { containerd: await storeBytes("containerd", images, reg, ctx), crib: await storeBytes("crib", images, reg, ctx) };
    tables.push({
      title: `footprint: store after pulling ${STORE_IMAGES} images that share layers (MiB)`,
      headers: ["runtime", "du -sb root", "vs containerd"],
      rows: (["containerd", "crib"] as const).map((r) => [r, mib(bytes[r]), ratio(bytes[r], bytes.containerd)]),
      notes: [
        `each image: busybox + a shared ${SHARED_LAYER_BYTES / MiB} MiB layer + its own ${UNIQUE_LAYER_BYTES / 1024} KiB layer (random, gzip);`,
        `${mib(uniqueBytes)} MiB if every image's compressed blobs were counted separately; both keep compressed blobs and unpacked layers`,
        "excluded: crib ingest/; containerd io.containerd.content.v1.content/ingest and tmpmounts",
      ],
    });
    return tables;
  },
};
