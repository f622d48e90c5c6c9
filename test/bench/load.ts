// Load: many pods with two containers each, started and then stopped all at
// once, while a kubelet-like poller lists pods and containers every second and
// asks for stats every ten. Every operation must succeed; the figures are the
// p50/p99 latency of each RPC and the daemon's RSS (idle, peak, after).
//
//   bun test/bench/run.ts load            100 pods (LOAD_PODS=N to change)
//
// crib only: the point is crib under load, not a comparison (pods.ts compares
// single-pod start-up with containerd).
import { status } from "@grpc/grpc-js";
import { CriClient, CriError } from "../../src/ctl/client.ts";
import { NamespaceMode, type ContainerConfig, type Out, type PodSandboxConfig } from "../../src/protocol/types.ts";
import { type CribInstance, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import type { TestRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";
import type { BenchContext, Benchmark } from "./run.ts";
import { fmt, percentile, readProcStatus, type Table } from "./stats.ts";

export interface LoadOptions {
  pods: number;
  containersPerPod: number;
  /** The poller's list period (the kubelet's PLEG relists every second). */
  listEveryMs: number;
  /** The poller's stats period (the kubelet's cadvisor-less stats, every ten seconds). */
  statsEveryMs: number;
  /** Keep everything running this long between the start and the stop waves. */
  holdMs: number;
}

export const DEFAULT_LOAD: LoadOptions = { pods: 100, containersPerPod: 2, listEveryMs: 1000, statsEveryMs: 10_000, holdMs: 10_000 };

export interface LoadReport {
  options: LoadOptions;
  /** Milliseconds of every call, by RPC. */
  latencies: Map<string, number[]>;
  /** Calls that failed, with why (empty in a good run). */
  failures: string[];
  /** Poller rounds done, and why stats were skipped if they were (UNIMPLEMENTED). */
  listRounds: number;
  statsRounds: number;
  statsSkipped?: string;
  /** Seconds the start wave and the stop wave took. */
  startSeconds: number;
  stopSeconds: number;
  /** Daemon RSS in KiB: idle before the load, its peak, and after everything was removed. */
  rssIdleKiB: number;
  rssPeakKiB: number;
  rssEndKiB: number;
}

/** Calls through one client, timing each and keeping failures instead of throwing. */
class Timed {
  readonly latencies = new Map<string, number[]>();
  readonly failures: string[] = [];
  constructor(private readonly client: CriClient) {}

  record(name: string, ms: number): void {
    const list = this.latencies.get(name) ?? [];
    list.push(ms);
    this.latencies.set(name, list);
  }

  async call<T>(name: string, fn: (c: CriClient) => Promise<T>): Promise<T | undefined> {
    const t0 = performance.now();
    try {
      const r = await fn(this.client);
      this.record(name, performance.now() - t0);
      return r;
    } catch (e) {
      this.failures.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }
}

function podCfg(i: number, logDir: string): Out<PodSandboxConfig> {
  return {
    metadata: { name: `load-${i}`, namespace: "load", uid: `uid-load-${i}-${process.pid}`, attempt: 0 },
    hostname: `load-${i}`,
    log_directory: logDir,
    labels: { app: "load", pod: String(i) },
    linux: { cgroup_parent: "", security_context: { namespace_options: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } } },
  };
}

function ctrCfg(pod: number, c: number, image: string): Out<ContainerConfig> {
  return { metadata: { name: `c${c}`, attempt: 0 }, image: { image }, command: ["sleep", "100000"], log_path: `load-${pod}/c${c}.log`, labels: { c: String(c) } };
}

/**
 * Run the load against a crib daemon that has `image` pulled. Everything it
 * creates is removed again before it returns (also when calls fail).
 */
export async function runLoad(crib: CribInstance, image: string, logDir: string, opts: LoadOptions): Promise<LoadReport> {
  // Its own client: the poller and the waves share one connection, as the kubelet's do.
  const client = new CriClient(`unix://${crib.socket}`, 120_000);
  const t = new Timed(client);
  const pid = crib.proc.pid;
  const rss = () => readProcStatus(pid)?.vmRSS ?? 0;
  const rssIdleKiB = rss();
  let rssPeakKiB = rssIdleKiB;
  const sampler = setInterval(() => (rssPeakKiB = Math.max(rssPeakKiB, rss())), 250);

  let polling = true;
  let listRounds = 0;
  let statsRounds = 0;
  let statsSkipped: string | undefined;
  const poller = (async () => {
    let nextStats = performance.now() + opts.statsEveryMs;
    while (polling) {
      await Promise.all([
        t.call("ListPodSandbox", (c) => c.call("RuntimeService", "ListPodSandbox", { filter: null })),
        t.call("ListContainers", (c) => c.call("RuntimeService", "ListContainers", { filter: null })),
      ]);
      listRounds++;
      if (statsSkipped === undefined && performance.now() >= nextStats) {
        nextStats += opts.statsEveryMs;
        // Stats may not be implemented (yet): then say so and stop asking.
        const t0 = performance.now();
        try {
          await client.call("RuntimeService", "ListContainerStats", { filter: null });
          t.record("ListContainerStats", performance.now() - t0);
          await t.call("ListPodSandboxStats", (c) => c.call("RuntimeService", "ListPodSandboxStats", { filter: null }));
          statsRounds++;
        } catch (e) {
          if (e instanceof CriError && e.code === status.UNIMPLEMENTED) statsSkipped = e.details;
          else t.failures.push(`ListContainerStats: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      await Bun.sleep(opts.listEveryMs);
    }
  })();

  const pods: { i: number; cfg: Out<PodSandboxConfig>; id?: string; ctrs: string[] }[] = Array.from({ length: opts.pods }, (_, i) => ({ i, cfg: podCfg(i, logDir), ctrs: [] }));
  const started = performance.now();
  await Promise.all(
    pods.map(async (p) => {
      const r = await t.call("RunPodSandbox", (c) => c.call("RuntimeService", "RunPodSandbox", { config: p.cfg }));
      if (!r) return;
      p.id = r.pod_sandbox_id;
      const ids = await Promise.all(
        Array.from({ length: opts.containersPerPod }, (_, k) =>
          t.call("CreateContainer", (c) => c.call("RuntimeService", "CreateContainer", { pod_sandbox_id: r.pod_sandbox_id, config: ctrCfg(p.i, k, image), sandbox_config: p.cfg })),
        ),
      );
      p.ctrs = ids.flatMap((x) => (x ? [x.container_id] : []));
      await Promise.all(p.ctrs.map((id) => t.call("StartContainer", (c) => c.call("RuntimeService", "StartContainer", { container_id: id }))));
    }),
  );
  const startSeconds = (performance.now() - started) / 1000;
  await Bun.sleep(opts.holdMs);

  const stopping = performance.now();
  await Promise.all(
    pods.map(async (p) => {
      await Promise.all(p.ctrs.map((id) => t.call("StopContainer", (c) => c.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0 }))));
      if (p.id) await t.call("StopPodSandbox", (c) => c.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id! }));
      await Promise.all(p.ctrs.map((id) => t.call("RemoveContainer", (c) => c.call("RuntimeService", "RemoveContainer", { container_id: id }))));
      if (p.id) await t.call("RemovePodSandbox", (c) => c.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id! }));
    }),
  );
  const stopSeconds = (performance.now() - stopping) / 1000;
  polling = false;
  await poller;
  clearInterval(sampler);
  // Whatever a failed call left behind goes too (the figures are taken already).
  for (const p of (await client.call("RuntimeService", "ListPodSandbox", { filter: null }).catch(() => ({ items: [] }))).items) {
    if (p.labels.app === "load") await client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
  }
  const rssEndKiB = rss();
  client.close();
  return { options: opts, latencies: t.latencies, failures: t.failures, listRounds, statsRounds, statsSkipped, startSeconds, stopSeconds, rssIdleKiB, rssPeakKiB, rssEndKiB };
}

/** The report as tables: latency per RPC, then the totals. */
export function loadTables(r: LoadReport): Table[] {
  const order = ["RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "StopPodSandbox", "RemoveContainer", "RemovePodSandbox", "ListPodSandbox", "ListContainers", "ListContainerStats", "ListPodSandboxStats"];
  const rows = order
    .filter((k) => r.latencies.has(k))
    .map((k) => {
      const s = r.latencies.get(k)!;
      return [k, String(s.length), fmt(percentile(s, 50)), fmt(percentile(s, 99)), fmt(Math.max(...s))];
    });
  const mib = (kib: number) => fmt(kib / 1024);
  return [
    {
      title: `load: ${r.options.pods} pods x ${r.options.containersPerPod} containers, started and stopped at once, lists every ${r.options.listEveryMs / 1000}s, stats every ${r.options.statsEveryMs / 1000}s`,
      headers: ["RPC", "calls", "p50 ms", "p99 ms", "max ms"],
      rows,
      notes: [
        `start wave ${fmt(r.startSeconds)} s, stop wave ${fmt(r.stopSeconds)} s; poller: ${r.listRounds} list rounds, ${r.statsRounds} stats rounds${r.statsSkipped ? ` (stats skipped: ${r.statsSkipped})` : ""}`,
        `daemon RSS: idle ${mib(r.rssIdleKiB)} MiB, peak ${mib(r.rssPeakKiB)} MiB, after ${mib(r.rssEndKiB)} MiB`,
        r.failures.length === 0 ? "every call succeeded" : `${r.failures.length} calls FAILED, first: ${r.failures[0]}`,
      ],
    },
  ];
}

/** A busybox image for the load, pushed to `reg`. */
export function loadImage(reg: TestRegistry): Promise<PushedImage> {
  return pushImage(reg, "bench/load:1", { layers: [busyboxLayer()] });
}

export const loadBenchmark: Benchmark = {
  name: "load",
  description: "100 pods x 2 containers started and stopped at once under a kubelet-like poller: p50/p99 RPC latency, daemon RSS",
  async run(ctx: BenchContext): Promise<Table[]> {
    if (!ctx.cribBuilt) return [{ title: "load", headers: ["runtime", "result"], rows: [["crib", "not built (npm run build)"]] }];
    const pods = Number(process.env.LOAD_PODS ?? DEFAULT_LOAD.pods);
    const image = await loadImage(await ctx.registry());
    const crib = await startCrib({ log: { level: "warn" } });
    const untrack = ctx.track("load crib", async () => {
      await crib.stop();
      crib.cleanup();
    });
    try {
      await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
      ctx.log(`load: ${pods} pods starting`);
      const report = await runLoad(crib, image.ref, tempDir("crib-load-logs-"), { ...DEFAULT_LOAD, pods });
      if (report.failures.length > 0) ctx.log(`load: ${report.failures.length} calls failed:\n  ${report.failures.slice(0, 10).join("\n  ")}`);
      return loadTables(report);
    } finally {
      const monitor = await Bun.file(`${crib.state}/monitor/monitor.pid`).text().catch(() => "");
      await crib.stop();
      if (Number(monitor) > 0) process.kill(Number(monitor), "SIGTERM");
      crib.cleanup();
      untrack();
    }
  },
};
