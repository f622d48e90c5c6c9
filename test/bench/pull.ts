// Cold image pull: a ~100 MB multi-layer gzip image from a local registry, in two modes,
// rotating which runtime goes first. The timer spans the PullImage call only, which for
// both means download, verify and unpack.
//
// fresh: a fresh containerd and a fresh crib per pull (new dirs each run, nothing cached
// but the registry's files in the page cache).
// warm: one running containerd and one crib with its default config; each run pulls the
// image, then removes it (so the next pull is cold again). One pull each before the
// measured runs warms the daemons up. A third warm crib runs with its allocator's
// purging off (NO_PURGE_ENV), to show what fresh-page faults cost a pull.
//
// crib runs twice: as configured by default (pull.syncFs: every layer flushed to the
// disk before it is recorded) and with syncFs off, which is what containerd 1.6 does
// (it cannot flush layers; containerd 2.0 can, with image_pull_with_sync_fs). The
// target compares like with like: crib without syncFs against containerd.
import { status } from "@grpc/grpc-js";
import { CriClient, CriError } from "../../src/ctl/client.ts";
import { startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, type PushedImage, pushImage, randomLayer } from "../helpers/images.ts";
import { startContainerd, unmountUnder } from "./containerd.ts";
import type { BenchContext, Benchmark } from "./run.ts";
import { fmt, kibToMiB, ratio, readProcStatus, summarize, type Table } from "./stats.ts";

const DEFAULT_RUNS = 5;
const RANDOM_LAYERS = 5;
const RANDOM_LAYER_BYTES = 20 * 1024 * 1024;
const PULL_TIMEOUT_MS = 10 * 60_000;

type RuntimeName = "containerd" | "crib" | "crib-nosync" | "crib-nopurge";
const RUNTIMES: RuntimeName[] = ["containerd", "crib", "crib-nosync"];
const LABEL: Record<RuntimeName, string> = { containerd: "containerd", crib: "crib", "crib-nosync": "crib syncFs off", "crib-nopurge": "crib no purge" };
/**
 * crib's allocator (mimalloc, inside Bun) hands freed pages back to the kernel, so every
 * pull touches ~100 MB of fresh pages again (~25k faults; ~13 µs each on the VMs
 * measured). With purging off a warm daemon reuses them. Only settable in the
 * environment at start: this row measures what that would give, at the price of the
 * daemon keeping its peak resident.
 */
const NO_PURGE_ENV = { MIMALLOC_PURGE_DELAY: "-1" };
/** Target from issue 16: crib's time at most this times containerd's, in both modes. */
const TIME_TARGET_RATIO = 0.6;
type WarmRuntime = "containerd" | "crib" | "crib-nopurge";
const WARM_RUNTIMES: WarmRuntime[] = ["containerd", "crib", "crib-nopurge"];

interface PullSample {
  ms: number;
  /** VmHWM of the daemon right after the pull: its peak RSS so far (start-up + pull). */
  peakRssKiB: number | undefined;
}

/** A daemon started for one pull: its client, pid, and how to get rid of it. */
interface Daemon {
  client: CriClient;
  pid: number;
  stop(): Promise<void>;
}

/** Outcome of one runtime's pull: a sample, or the reason there is none. */
type PullOutcome = { kind: "ok"; sample: PullSample } | { kind: "unimplemented" } | { kind: "failed"; message: string };

async function startDaemon(runtime: RuntimeName, registryHost: string, ctx: BenchContext): Promise<Daemon> {
  if (runtime === "containerd") {
    const c = await startContainerd({ registryHosts: [registryHost] });
    const untrack = ctx.track("containerd", c.stop);
    return {
      client: c.client,
      pid: c.pid,
      async stop() {
        await c.stop();
        untrack();
      },
    };
  }
  const c = await startCrib({
    log: { level: "info" },
    ...(runtime === "crib-nosync" ? { pull: { syncFs: false } } : {}),
    registries: { mirrors: { [registryHost]: { endpoint: [`http://${registryHost}`] } } },
  }, undefined, undefined, runtime === "crib-nopurge" ? NO_PURGE_ENV : undefined);
  const release = async (): Promise<void> => {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      const code = await Promise.race([c.stop(), Bun.sleep(10_000).then(() => "timeout" as const)]);
      if (code === "timeout") await c.kill();
    }
    const left = unmountUnder(c.dir);
    if (left.length > 0) throw new Error(`crib left mounts under ${c.dir}: ${left.join(", ")}`);
    c.cleanup();
  };
  const untrack = ctx.track("crib", release);
  const pid = c.proc.pid;
  return {
    client: c.client,
    pid,
    async stop() {
      await release();
      untrack();
    },
  };
}

/** One timed PullImage on a running daemon. */
async function timedPull(runtime: RuntimeName, daemon: Daemon, image: PushedImage): Promise<PullOutcome> {
  try {
    // Earlier runs' writes would otherwise be flushed during this pull.
    Bun.spawnSync(["sync"]);
    const t0 = performance.now();
    const res = await daemon.client.call("ImageService", "PullImage", { image: { image: image.ref } }, { timeoutMs: PULL_TIMEOUT_MS });
    const ms = performance.now() - t0;
    if (res.image_ref === "") return { kind: "failed", message: `PullImage of ${image.ref} returned an empty image_ref` };
    return { kind: "ok", sample: { ms, peakRssKiB: readProcStatus(daemon.pid)?.vmHWM } };
  } catch (err) {
    if (err instanceof CriError && err.code === status.UNIMPLEMENTED) return { kind: "unimplemented" };
    // containerd is the reference: if it cannot pull, the benchmark itself is broken.
    if (runtime === "containerd") throw err;
    return { kind: "failed", message: err instanceof Error ? err.message : String(err) };
  }
}

async function pullOnce(runtime: RuntimeName, image: PushedImage, registryHost: string, ctx: BenchContext): Promise<PullOutcome> {
  const daemon = await startDaemon(runtime, registryHost, ctx);
  try {
    return await timedPull(runtime, daemon, image);
  } finally {
    await daemon.stop();
  }
}

/** Pull then remove on a running daemon: the removal makes the next pull cold again. */
async function pullAndRemove(runtime: WarmRuntime, daemon: Daemon, image: PushedImage): Promise<PullOutcome> {
  const out = await timedPull(runtime, daemon, image);
  if (out.kind === "ok") await daemon.client.call("ImageService", "RemoveImage", { image: { image: image.ref } });
  return out;
}

async function pushBenchImage(ctx: BenchContext): Promise<PushedImage> {
  const reg = await ctx.registry();
  ctx.log(`pull: building and pushing ${RANDOM_LAYERS + 1} layers (~${(RANDOM_LAYERS * RANDOM_LAYER_BYTES) / 2 ** 20} MB, gzip) to ${reg.host}`);
  const layers = [busyboxLayer(), ...Array.from({ length: RANDOM_LAYERS }, (_, i) => randomLayer(RANDOM_LAYER_BYTES, 1000 + i))];
  return await pushImage(reg, "bench/pull:100mb", { layers, format: "oci", compression: "gzip" });
}

function row(runtime: string, samples: PullSample[], imageMB: number, note: string | undefined): string[] {
  if (note !== undefined) return [runtime, note];
  const t = summarize(samples.map((s) => s.ms));
  const rss = summarize(samples.map((s) => s.peakRssKiB).filter((x): x is number => x !== undefined));
  return [runtime, String(t.n), fmt(t.median, 0), fmt(t.min, 0), fmt(t.max, 0), fmt(imageMB / (t.median / 1000), 1), fmt(kibToMiB(rss.median), 1)];
}

/** Median PullImage times in ms (undefined: crib gave no figure; see the notes). */
export interface PullMedians {
  /** A fresh daemon per pull; crib with syncFs off is the like-for-like figure. */
  fresh: { containerd: number; crib: number | undefined; cribNoSync: number | undefined };
  /** Pull, remove, pull again on one running daemon; crib with its default config, and with the allocator's purging off (NO_PURGE_ENV). */
  warm: { containerd: number; crib: number | undefined; cribNoPurge: number | undefined };
}

export interface PullMeasurement {
  medians: PullMedians;
  tables: Table[];
}

/** Both modes, `runs` pulls per runtime each (BenchContext.runs, else 5): medians and the report's table. */
export async function measurePull(ctx: BenchContext): Promise<PullMeasurement> {
  const runs = ctx.runs ?? DEFAULT_RUNS;
  const reg = await ctx.registry();
  const image = await pushBenchImage(ctx);
  const imageMB = image.size / 1e6;
  const samples: Record<RuntimeName, PullSample[]> = { containerd: [], crib: [], "crib-nosync": [], "crib-nopurge": [] };
  const warmSamples: Record<WarmRuntime, PullSample[]> = { containerd: [], crib: [], "crib-nopurge": [] };
  const idleRss: Partial<Record<WarmRuntime, number>> = {};
  // Set once crib cannot give a figure; later runs then skip it.
  let cribNote: string | undefined = ctx.cribBuilt ? undefined : "not built (npm run build)";
  const failures: string[] = [];
  const record = (out: PullOutcome, into: PullSample[], label: string): void => {
    if (out.kind === "ok") {
      into.push(out.sample);
      ctx.log(`pull: ${label}: ${out.sample.ms.toFixed(0)} ms, peak RSS ${fmt(kibToMiB(out.sample.peakRssKiB), 1)} MiB`);
    } else if (out.kind === "unimplemented") {
      cribNote = "not implemented yet";
      ctx.log("pull: crib: not implemented yet (PullImage answers UNIMPLEMENTED)");
    } else {
      cribNote = "failed (see notes)";
      ctx.log(`pull: crib failed: ${out.message}`);
      failures.push(`crib failed: ${out.message}`);
    }
  };

  for (let i = 0; i < runs; i++) {
    const order = RUNTIMES.map((_, k) => RUNTIMES[(i + k) % RUNTIMES.length]!);
    for (const runtime of order) {
      if (runtime !== "containerd" && cribNote !== undefined) continue;
      record(await pullOnce(runtime, image, reg.host, ctx), samples[runtime], `fresh run ${i + 1}/${runs} ${LABEL[runtime]}`);
    }
  }

  const warm: Partial<Record<WarmRuntime, Daemon>> = {};
  try {
    for (const runtime of WARM_RUNTIMES) {
      if (runtime !== "containerd" && cribNote !== undefined) continue;
      const daemon = await startDaemon(runtime, reg.host, ctx);
      warm[runtime] = daemon;
      record(await pullAndRemove(runtime, daemon, image), [], `warm-up ${LABEL[runtime]}`);
    }
    for (let i = 0; i < runs; i++) {
      const order = WARM_RUNTIMES.map((_, k) => WARM_RUNTIMES[(i + k) % WARM_RUNTIMES.length]!);
      for (const runtime of order) {
        const daemon = warm[runtime];
        if (daemon === undefined || (runtime !== "containerd" && cribNote !== undefined)) continue;
        record(await pullAndRemove(runtime, daemon, image), warmSamples[runtime], `warm run ${i + 1}/${runs} ${LABEL[runtime]}`);
      }
    }
    // What each warm daemon keeps resident once idle after its pulls.
    await Bun.sleep(2000);
    for (const [r, d] of Object.entries(warm) as [WarmRuntime, Daemon][]) idleRss[r] = readProcStatus(d.pid)?.vmRSS;
  } finally {
    for (const d of Object.values(warm)) await d.stop();
  }

  const med = (xs: PullSample[]): number => summarize(xs.map((s) => s.ms)).median;
  const cribMed = (xs: PullSample[]): number | undefined => (cribNote === undefined ? med(xs) : undefined);
  const medians: PullMedians = {
    fresh: { containerd: med(samples.containerd), crib: cribMed(samples.crib), cribNoSync: cribMed(samples["crib-nosync"]) },
    warm: { containerd: med(warmSamples.containerd), crib: cribMed(warmSamples.crib), cribNoPurge: cribMed(warmSamples["crib-nopurge"]) },
  };
  const verdict = (a: number | undefined, b: number): string => (a === undefined ? "-" : a <= TIME_TARGET_RATIO * b ? "met" : "NOT met");
  const notes: string[] = [];
  notes.push(`image: ${image.ref}, ${image.layers.length} layers, ${imageMB.toFixed(1)} MB compressed; MB/s = compressed MB / median time`);
  notes.push(`peak RSS: the daemon's VmHWM right after the pull (fresh: start-up + pull; warm: everything so far)`);
  notes.push("crib: the default config, each layer flushed to the disk (syncFs) before it is recorded; crib syncFs off: as containerd 1.6, which never flushes layers");
  notes.push(
    `fresh: crib/containerd (median time): ${ratio(medians.fresh.crib, medians.fresh.containerd)}; crib syncFs off/containerd: ${ratio(medians.fresh.cribNoSync, medians.fresh.containerd)}   ` +
      `target <= ${TIME_TARGET_RATIO}x (like for like): ${verdict(medians.fresh.cribNoSync, medians.fresh.containerd)}`,
  );
  notes.push(`warm: crib (defaults)/containerd: ${ratio(medians.warm.crib, medians.warm.containerd)}   target <= ${TIME_TARGET_RATIO}x: ${verdict(medians.warm.crib, medians.warm.containerd)}`);
  notes.push(
    `warm: crib no purge (${Object.entries(NO_PURGE_ENV).map(([k, v]) => `${k}=${v}`).join(" ")})/containerd: ${ratio(medians.warm.cribNoPurge, medians.warm.containerd)}; ` +
      `idle RSS 2 s after the last pull (MiB): ${WARM_RUNTIMES.map((r) => `${LABEL[r]} ${fmt(kibToMiB(idleRss[r]), 1)}`).join(", ")}`,
  );
  notes.push(...failures);
  const tables: Table[] = [
    {
      title: `== pull: cold PullImage, ${runs} runs each ==`,
      headers: ["mode", "runtime", "runs", "median ms", "min ms", "max ms", "MB/s", "peak RSS MiB"],
      rows: [
        ...RUNTIMES.map((r) => ["fresh", ...row(LABEL[r], samples[r], imageMB, r === "containerd" ? undefined : cribNote)]),
        ...WARM_RUNTIMES.map((r) => ["warm", ...row(LABEL[r], warmSamples[r], imageMB, r === "containerd" ? undefined : cribNote)]),
      ],
      notes,
    },
  ];
  return { medians, tables };
}

export const pullBenchmark: Benchmark = {
  name: "pull",
  description: "cold PullImage of a ~100 MB, 6-layer gzip image from a local registry (fresh daemons, and warm ones pulling after a removal)",
  async run(ctx: BenchContext): Promise<Table[]> {
    return (await measurePull(ctx)).tables;
  },
};

// ---- measurePulls: the edge budget's pull figures (budget.ts) ----

/** The budget's image: 60 MB of incompressible data in 5 gzip layers. */
const BUDGET_LAYERS = 5;
const BUDGET_LAYER_BYTES = 12_000_000;

/**
 * warm-defaults: one daemon of each runtime, both as configured by default (crib with
 * syncFs), kept running; each run removes the image and pulls it again, so the timer
 * sees a cold store on a warm daemon, as a node that pulls a new image.
 * fresh-syncfs-off: a fresh daemon per pull (what the pull benchmark above does),
 * crib with syncFs off, as containerd 1.6.
 */
export type PullMode = "warm-defaults" | "fresh-syncfs-off";

/** Pushed once per run: both modes pull the same image. */
let budgetImage: Promise<PushedImage> | undefined;

function pushBudgetImage(ctx: BenchContext): Promise<PushedImage> {
  budgetImage ??= pushBudgetImageOnce(ctx);
  return budgetImage;
}

async function pushBudgetImageOnce(ctx: BenchContext): Promise<PushedImage> {
  const reg = await ctx.registry();
  ctx.log(`pull: pushing ${BUDGET_LAYERS} layers of ${BUDGET_LAYER_BYTES / 1e6} MB (random, gzip) to ${reg.host}`);
  const layers = Array.from({ length: BUDGET_LAYERS }, (_, i) => randomLayer(BUDGET_LAYER_BYTES, 2000 + i));
  return await pushImage(reg, "bench/pull:60mb", { layers, format: "oci", compression: "gzip" });
}

/** One timed pull then its removal, on a running daemon of the budget's pair. */
async function warmPullMs(runtime: RuntimeName, daemon: Daemon, image: PushedImage): Promise<number> {
  const r = await timedPull(runtime, daemon, image);
  if (r.kind !== "ok") throw new Error(`${runtime}: ${r.kind === "failed" ? r.message : "PullImage is not implemented"}`);
  await daemon.client.call("ImageService", "RemoveImage", { image: { image: image.ref } }, { timeoutMs: PULL_TIMEOUT_MS });
  return r.sample.ms;
}

/** Milliseconds of each timed PullImage of the 60 MB image, per runtime, alternating which goes first. */
export async function measurePulls(ctx: BenchContext, opts: { mode: PullMode; runs: number }): Promise<{ crib: number[]; containerd: number[] }> {
  const reg = await ctx.registry();
  const image = await pushBudgetImage(ctx);
  const out = { crib: [] as number[], containerd: [] as number[] };
  const cribRuntime: RuntimeName = opts.mode === "warm-defaults" ? "crib" : "crib-nosync";
  const pair = [
    { key: "containerd" as const, runtime: "containerd" as RuntimeName },
    { key: "crib" as const, runtime: cribRuntime },
  ];
  if (opts.mode === "fresh-syncfs-off") {
    for (let i = 0; i < opts.runs; i++) {
      for (const p of i % 2 === 0 ? pair : [...pair].reverse()) {
        const r = await pullOnce(p.runtime, image, reg.host, ctx);
        if (r.kind !== "ok") throw new Error(`${p.runtime}: ${r.kind === "failed" ? r.message : "PullImage is not implemented"}`);
        out[p.key].push(r.sample.ms);
        ctx.log(`pull (${opts.mode}): run ${i + 1}/${opts.runs} ${LABEL[p.runtime]}: ${r.sample.ms.toFixed(0)} ms`);
      }
    }
    return out;
  }
  const daemons: Daemon[] = [];
  try {
    for (const p of pair) daemons.push(await startDaemon(p.runtime, reg.host, ctx));
    // One untimed pull and remove each: the daemons are warm, as on a node that has pulled before.
    for (const [k, d] of daemons.entries()) await warmPullMs(pair[k]!.runtime, d, image);
    for (let i = 0; i < opts.runs; i++) {
      const order = i % 2 === 0 ? [0, 1] : [1, 0];
      for (const k of order) {
        const p = pair[k]!;
        const d = daemons[k]!;
        const ms = await warmPullMs(p.runtime, d, image);
        out[p.key].push(ms);
        ctx.log(`pull (${opts.mode}): run ${i + 1}/${opts.runs} ${LABEL[p.runtime]}: ${ms.toFixed(0)} ms`);
      }
    }
  } finally {
    for (const d of daemons.reverse()) await d.stop();
  }
  return out;
}
