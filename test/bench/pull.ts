// Cold image pull: a ~100 MB multi-layer gzip image from a local registry, pulled by
// a fresh containerd and a fresh crib (new dirs each run, nothing cached but the
// registry's files in the page cache), rotating which goes first. The timer spans
// the PullImage call only, which for both means download, verify and unpack.
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

type RuntimeName = "containerd" | "crib" | "crib-nosync";
const RUNTIMES: RuntimeName[] = ["containerd", "crib", "crib-nosync"];
const LABEL: Record<RuntimeName, string> = { containerd: "containerd", crib: "crib", "crib-nosync": "crib syncFs off" };
/** Target from the images issue: crib's time at most this times containerd's. */
const TIME_TARGET_RATIO = 0.8;

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
  });
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

async function pullOnce(runtime: RuntimeName, image: PushedImage, registryHost: string, ctx: BenchContext): Promise<PullOutcome> {
  const daemon = await startDaemon(runtime, registryHost, ctx);
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
  } finally {
    await daemon.stop();
  }
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

export const pullBenchmark: Benchmark = {
  name: "pull",
  description: "cold PullImage of a ~100 MB, 6-layer gzip image from a local registry",
  async run(ctx: BenchContext): Promise<Table[]> {
    const runs = ctx.runs ?? DEFAULT_RUNS;
    const reg = await ctx.registry();
    const image = await pushBenchImage(ctx);
    const imageMB = image.size / 1e6;
    const samples: Record<RuntimeName, PullSample[]> = { containerd: [], crib: [], "crib-nosync": [] };
    // Set once crib cannot give a figure; later runs then skip it.
    let cribNote: string | undefined = ctx.cribBuilt ? undefined : "not built (npm run build)";
    const failures: string[] = [];

    for (let i = 0; i < runs; i++) {
      const order = RUNTIMES.map((_, k) => RUNTIMES[(i + k) % RUNTIMES.length]!);
      for (const runtime of order) {
        if (runtime !== "containerd" && cribNote !== undefined) continue;
        const out = await pullOnce(runtime, image, reg.host, ctx);
        if (out.kind === "ok") {
          samples[runtime].push(out.sample);
          ctx.log(`pull: run ${i + 1}/${runs} ${LABEL[runtime]}: ${out.sample.ms.toFixed(0)} ms, peak RSS ${fmt(kibToMiB(out.sample.peakRssKiB), 1)} MiB`);
        } else if (out.kind === "unimplemented") {
          cribNote = "not implemented yet";
          ctx.log("pull: crib: not implemented yet (PullImage answers UNIMPLEMENTED)");
        } else {
          cribNote = "failed (see notes)";
          ctx.log(`pull: crib failed: ${out.message}`);
          failures.push(`crib failed: ${out.message}`);
        }
      }
    }

    const median = (r: RuntimeName): number | undefined => (r === "containerd" || cribNote === undefined ? summarize(samples[r].map((s) => s.ms)).median : undefined);
    const ctdMedian = median("containerd");
    const likeForLike = median("crib-nosync");
    const met = likeForLike === undefined || ctdMedian === undefined ? "-" : likeForLike <= TIME_TARGET_RATIO * ctdMedian ? "met" : "NOT met";
    const notes: string[] = [];
    notes.push(`image: ${image.ref}, ${image.layers.length} layers, ${imageMB.toFixed(1)} MB compressed; MB/s = compressed MB / median time`);
    notes.push(`peak RSS: the daemon's VmHWM right after the pull (start-up + pull)`);
    notes.push("crib: the default config, each layer flushed to the disk (syncFs) before it is recorded; crib syncFs off: as containerd 1.6, which never flushes layers");
    notes.push(`crib/containerd (median time): ${ratio(median("crib"), ctdMedian)}; crib syncFs off/containerd: ${ratio(likeForLike, ctdMedian)}   target <= ${TIME_TARGET_RATIO}x (like for like): ${met}`);
    notes.push(...failures);
    return [
      {
        title: `== pull: cold PullImage, ${runs} runs each ==`,
        headers: ["runtime", "runs", "median ms", "min ms", "max ms", "MB/s", "peak RSS MiB"],
        rows: RUNTIMES.map((r) => row(LABEL[r], samples[r], imageMB, r === "containerd" ? undefined : cribNote)),
        notes,
      },
    ];
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

async function timedPull(client: CriClient, ref: string): Promise<number> {
  // Earlier runs' writes would otherwise be flushed during this pull.
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  const res = await client.call("ImageService", "PullImage", { image: { image: ref } }, { timeoutMs: PULL_TIMEOUT_MS });
  const ms = performance.now() - t0;
  if (res.image_ref === "") throw new Error(`PullImage of ${ref} returned an empty image_ref`);
  return ms;
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
    for (const d of daemons) {
      await timedPull(d.client, image.ref);
      await d.client.call("ImageService", "RemoveImage", { image: { image: image.ref } }, { timeoutMs: PULL_TIMEOUT_MS });
    }
    for (let i = 0; i < opts.runs; i++) {
      const order = i % 2 === 0 ? [0, 1] : [1, 0];
      for (const k of order) {
        const p = pair[k]!;
        const d = daemons[k]!;
        const ms = await timedPull(d.client, image.ref);
        await d.client.call("ImageService", "RemoveImage", { image: { image: image.ref } }, { timeoutMs: PULL_TIMEOUT_MS });
        out[p.key].push(ms);
        ctx.log(`pull (${opts.mode}): run ${i + 1}/${opts.runs} ${LABEL[p.runtime]}: ${ms.toFixed(0)} ms`);
      }
    }
  } finally {
    for (const d of daemons.reverse()) await d.stop();
  }
  return out;
}
