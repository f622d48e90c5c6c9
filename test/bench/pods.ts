// Pods and containers: crib and Debian's containerd measured in the same run, one
// after the other, each with a fresh daemon in temp dirs and the image already pulled.
//
//   start     RunPodSandbox + CreateContainer + StartContainer returning (`sleep 3600`)
//   teardown  StopContainer (timeout 0), StopPodSandbox, RemoveContainer, RemovePodSandbox
//   memory    daemon RSS idle and with N running pods; PSS per running pod: what the
//             runtime's own processes grow by (crib: daemon + monitor; containerd: daemon
//             + one shim and one pause process per pod), the workloads left out. Read
//             twice: cold (the daemon's first N pods, which also start crib's node-wide
//             monitor and warm up both daemons) and steady (N more pods after those were
//             removed: what each further pod costs).
//
// Pods use the host network on both runtimes: containerd 1.6 refuses a sandbox whose
// CNI result has no eth0 (a loopback-only conflist fails with "failed to find network
// info"), and a bridge network would charge containerd for work crib does not do yet.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { CriClient, CriError } from "../../src/ctl/client.ts";
import { type ContainerConfig, NamespaceMode, type Out, type PodSandboxConfig } from "../../src/protocol/types.ts";
import { requireBinary, tempConfig, waitForSocket } from "../helpers/daemon.ts";
import { busyboxLayer, type PushedImage, pushImage } from "../helpers/images.ts";
import type { TestRegistry } from "../helpers/registry.ts";
import type { TarEntry } from "../helpers/tar.ts";
import { pidsMentioning, startContainerd, unmountUnder } from "./containerd.ts";
import type { BenchContext, Benchmark } from "./run.ts";
import { fmt, kibToMiB, median, processTree, ratio, readProcStatus, readSmapsRollup, summarize, type Table } from "./stats.ts";

const DEFAULT_RUNS = 20;
const DEFAULT_MEMORY_PODS = 10;
/** Pause after start-up, pulls and pod starts before memory is read (GC, lazy page-ins). */
const DEFAULT_SETTLE_MS = 2000;
/** Memory readings per point, 300 ms apart; the median of each part is kept. */
const MEMORY_READINGS = 3;
const CALL_TIMEOUT_MS = 60_000;
/** Targets from the issue "Pods and containers". */
const START_TARGET_RATIO = 0.5;
const MEMORY_TARGET_KIB = 1e6 / 1024;
/** The pause-like sandbox image's command: a static busybox sleeping for ever. */
const PAUSE_ENTRYPOINT = ["/bin/busybox", "sleep", "2147483647"];

export type RuntimeName = "containerd" | "crib";

export interface PodsOptions {
  /** Timed start + teardown cycles per runtime (one pod at a time). */
  runs: number;
  /** Pods running at once for the memory figures. */
  memoryPods: number;
  settleMs: number;
  /** Which runtimes to measure, in this order (default: containerd, then crib). */
  runtimes?: RuntimeName[];
}

/** Milliseconds of one start: the three calls and their sum. */
export interface StartSample {
  runPod: number;
  create: number;
  start: number;
  total: number;
}

/** Milliseconds of one teardown, in the kubelet's order. */
export interface TeardownSample {
  stopContainer: number;
  stopPod: number;
  removeContainer: number;
  removePod: number;
  total: number;
}

/** One memory reading of a runtime's own processes, KiB (PSS unless named RSS). */
export interface MemoryReading {
  daemonRss: number;
  daemonPss: number;
  /** crib's monitor (0 while it is not running). */
  monitorPss: number;
  /** The monitor's private memory (USS): what it alone holds, freed if it exited. */
  monitorUss: number;
  /** containerd-shim-runc-v2 processes of this containerd, summed. */
  shimPss: number;
  shims: number;
  /** containerd's pause processes, summed. */
  pausePss: number;
  pauses: number;
}

export interface RuntimeResult {
  runtime: RuntimeName;
  /** Why there are no figures (crib not built, UNIMPLEMENTED, failed), else undefined. */
  note?: string;
  /** The error behind a "failed" note. */
  error?: string;
  /** The very first pod of the daemon (crib starts its monitor here). */
  firstStartMs?: number;
  starts: StartSample[];
  teardowns: TeardownSample[];
  /** Right after start-up, before any pull. */
  idle?: MemoryReading;
  /** Images pulled, no pod yet. */
  zeroPods?: MemoryReading;
  /** `memoryPods` pods running, the daemon's first. */
  withPods?: MemoryReading;
  /** After those pods were removed: node-wide processes running, no pod. */
  warmZero?: MemoryReading;
  /** `memoryPods` pods running again. */
  warmWithPods?: MemoryReading;
  /** Temp dirs, processes and containers the run created: all must be gone afterwards. */
  dirs: string[];
  pids: number[];
  containers: string[];
}

export interface PodsReport {
  options: PodsOptions;
  results: RuntimeResult[];
  tables: Table[];
}

/**
 * busybox with its applets as symlinks: the shared helper's hardlink entries carry mode
 * 0644, and containerd applies a hardlink's header mode to the linked file, which would
 * leave /bin/busybox non-executable there.
 */
function benchLayer(): TarEntry[] {
  return busyboxLayer().map((e): TarEntry => (e.type === "hardlink" ? { type: "symlink", path: e.path, target: "busybox" } : e));
}

interface BenchImages {
  busybox: PushedImage;
  pause: PushedImage;
}

async function pushBenchImages(reg: TestRegistry): Promise<BenchImages> {
  const layers = [benchLayer()];
  const busybox = await pushImage(reg, "bench/pods-busybox:1", { layers, config: { Env: ["PATH=/bin"] } });
  const pause = await pushImage(reg, "bench/pods-pause:1", { layers, config: { Entrypoint: PAUSE_ENTRYPOINT } });
  return { busybox, pause };
}

function podSpec(name: string, logDir: string): Out<PodSandboxConfig> {
  return {
    metadata: { name, namespace: "bench", uid: `${name}-${process.pid}`, attempt: 0 },
    // A host-network pod keeps the host's UTS namespace: runc refuses a hostname there.
    hostname: "",
    log_directory: logDir,
    labels: { bench: "pods" },
    linux: { cgroup_parent: "", security_context: { namespace_options: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } } },
  };
}

function sleepContainer(image: string): Out<ContainerConfig> {
  return { metadata: { name: "sleep", attempt: 0 }, image: { image }, command: ["sleep", "3600"], log_path: "sleep.log", labels: { bench: "pods" } };
}

interface RunningPod {
  podId: string;
  containerId: string;
}

/** The harness's view of one runtime under test. */
interface Runtime {
  name: RuntimeName;
  client: CriClient;
  /** Dir for pod log dirs; removed by stop(). */
  logRoot: string;
  pull(images: BenchImages): Promise<void>;
  memory(pods: RunningPod[]): Promise<MemoryReading>;
  /** Removes what is left, stops the daemon and every process it started, unmounts, deletes. */
  stop(): Promise<void>;
  dirs: string[];
  pids(): number[];
}

function pss(pid: number): number {
  return readSmapsRollup(pid)?.pss ?? 0;
}

function killQuiet(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Present in /proc and not a zombie (a reparented monitor may wait a while for its reaper). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.charAt(stat.lastIndexOf(")") + 2) !== "Z";
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(20);
  }
  return true;
}

/** Whether /proc/<pid>/cmdline starts with a program whose name contains `name`. */
function commandIs(pid: number, name: string): boolean {
  try {
    return (readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "").includes(name);
  } catch {
    return false;
  }
}

async function removeAllPods(client: CriClient): Promise<void> {
  const { items } = await client.call("RuntimeService", "ListPodSandbox", {}, { timeoutMs: 10_000 });
  for (const pod of items) {
    await client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: pod.id }, { timeoutMs: CALL_TIMEOUT_MS }).catch(() => undefined);
    await client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: pod.id }, { timeoutMs: CALL_TIMEOUT_MS }).catch(() => undefined);
  }
}

async function startContainerdRuntime(ctx: BenchContext, reg: TestRegistry, images: BenchImages): Promise<Runtime> {
  const c = await startContainerd({ registryHosts: [reg.host], sandboxImage: images.pause.ref });
  const logRoot = mkdtempSync(join(tmpdir(), "crib-bench-pods-logs-"));
  const seen = new Set<number>([c.pid]);
  const shimPids = (): number[] => {
    const found = pidsMentioning(c.socket).filter((p) => commandIs(p, "containerd-shim"));
    for (const p of found) seen.add(p);
    return found;
  };
  const untrack = ctx.track("containerd (pods)", async () => {
    await c.stop();
    rmSync(logRoot, { recursive: true, force: true });
  });
  return {
    name: "containerd",
    client: c.client,
    logRoot,
    dirs: [c.dir, logRoot],
    pids: () => [...seen],
    async pull(imgs) {
      for (const ref of [imgs.busybox.ref, imgs.pause.ref]) await c.client.call("ImageService", "PullImage", { image: { image: ref } }, { timeoutMs: CALL_TIMEOUT_MS });
    },
    async memory(pods) {
      const shims = shimPids();
      // The sandbox's init process (pause) is the "pid" of containerd's verbose status.
      const pauses: number[] = [];
      for (const p of pods) {
        const st = await c.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: p.podId, verbose: true });
        const info = st.info.info;
        const pid = info === undefined ? undefined : (JSON.parse(info) as { pid?: number }).pid;
        if (pid === undefined || pid <= 0) throw new Error(`containerd: PodSandboxStatus of ${p.podId} has no pause pid in its verbose info`);
        pauses.push(pid);
        seen.add(pid);
      }
      const daemon = readProcStatus(c.pid);
      return {
        daemonRss: daemon?.vmRSS ?? 0,
        daemonPss: pss(c.pid),
        monitorPss: 0,
        monitorUss: 0,
        shimPss: shims.reduce((s, p) => s + pss(p), 0),
        shims: shims.length,
        pausePss: pauses.reduce((s, p) => s + pss(p), 0),
        pauses: pauses.length,
      };
    },
    async stop() {
      shimPids();
      try {
        await c.stop();
      } finally {
        rmSync(logRoot, { recursive: true, force: true });
        untrack();
      }
    },
  };
}

/** A crib daemon run from a private copy of dist/crib. */
interface PrivateCrib {
  dir: string;
  state: string;
  pid: number;
  client: CriClient;
  running(): boolean;
  /** SIGTERM, SIGKILL after 10 s; the monitor keeps running. */
  stop(): Promise<void>;
}

/**
 * Starts crib from its own copy of the executable: the daemon and its monitor then share
 * file pages only with each other, as on a node, and not with other crib processes on this
 * machine (which would lower their PSS); a rebuild of dist/crib during the run cannot pull
 * the binary from under the monitor either.
 */
async function startPrivateCrib(extra: Record<string, unknown>): Promise<PrivateCrib> {
  const t = tempConfig(extra);
  const bin = join(t.dir, "crib");
  copyFileSync(requireBinary(), bin);
  chmodSync(bin, 0o755);
  const proc = Bun.spawn([bin, "serve", "--config", t.configPath], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  // Only the start of the log matters (readiness, start-up errors): keep it bounded.
  let stderr = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr) if (stderr.length < 64 * 1024) stderr += dec.decode(chunk, { stream: true });
  })();
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
  const client = new CriClient(`unix://${t.socket}`);
  const stop = async (): Promise<void> => {
    client.close();
    if (!running()) return;
    proc.kill("SIGTERM");
    const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
    if (!done) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  };
  try {
    await waitForSocket(proc, t.socket, () => stderr);
  } catch (err) {
    await stop();
    rmSync(t.dir, { recursive: true, force: true });
    throw err;
  }
  return { dir: t.dir, state: t.state, pid: proc.pid, client, running, stop };
}

async function startCribRuntime(ctx: BenchContext, reg: TestRegistry): Promise<Runtime> {
  // info: the harness waits for crib's "crib is serving" line.
  const c = await startPrivateCrib({ log: { level: "info" }, registries: { mirrors: { [reg.host]: { endpoint: [`http://${reg.host}`] } } } });
  const logRoot = mkdtempSync(join(tmpdir(), "crib-bench-pods-logs-"));
  const daemonPid = c.pid;
  const seen = new Set<number>([daemonPid]);
  const pidFile = join(c.state, "monitor", "monitor.pid");
  const monitorPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
      seen.add(pid);
      return pid;
    } catch {
      return undefined;
    }
  };
  let stopped = false;
  const release = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (c.running()) await removeAllPods(c.client).catch(() => undefined);
    const mon = monitorPid();
    await c.stop();
    if (mon !== undefined) {
      // Containers the pods left behind would be the monitor's children.
      for (const p of processTree(mon).slice(1)) killQuiet(p);
      killQuiet(mon, "SIGTERM");
      if (!(await waitGone(mon, 5000))) killQuiet(mon);
    }
    rmSync(logRoot, { recursive: true, force: true });
    // Never delete through a mount that is still there (it could be a layer's lower dir).
    const left = unmountUnder(c.dir);
    if (left.length > 0) throw new Error(`crib left mounts under ${c.dir}: ${left.join(", ")}`);
    rmSync(c.dir, { recursive: true, force: true });
  };
  const untrack = ctx.track("crib (pods)", release);
  return {
    name: "crib",
    client: c.client,
    logRoot,
    dirs: [c.dir, logRoot],
    pids: () => [...seen],
    async pull(imgs) {
      await c.client.call("ImageService", "PullImage", { image: { image: imgs.busybox.ref } }, { timeoutMs: CALL_TIMEOUT_MS });
    },
    async memory() {
      const mon = monitorPid();
      const daemon = readProcStatus(daemonPid);
      return {
        daemonRss: daemon?.vmRSS ?? 0,
        daemonPss: pss(daemonPid),
        // The monitor alone: its children are the containers.
        monitorPss: mon === undefined ? 0 : pss(mon),
        monitorUss: mon === undefined ? 0 : (readSmapsRollup(mon)?.private ?? 0),
        shimPss: 0,
        shims: 0,
        pausePss: 0,
        pauses: 0,
      };
    },
    async stop() {
      try {
        await release();
      } finally {
        untrack();
      }
    },
  };
}

/** The median of each field over a few readings taken `gapMs` apart. */
async function readMemory(rt: Runtime, pods: RunningPod[]): Promise<MemoryReading> {
  const readings: MemoryReading[] = [];
  for (let i = 0; i < MEMORY_READINGS; i++) {
    if (i > 0) await Bun.sleep(300);
    readings.push(await rt.memory(pods));
  }
  const m = (f: (r: MemoryReading) => number): number => median(readings.map(f));
  return {
    daemonRss: m((r) => r.daemonRss),
    daemonPss: m((r) => r.daemonPss),
    monitorPss: m((r) => r.monitorPss),
    monitorUss: m((r) => r.monitorUss),
    shimPss: m((r) => r.shimPss),
    shims: m((r) => r.shims),
    pausePss: m((r) => r.pausePss),
    pauses: m((r) => r.pauses),
  };
}

let podSeq = 0;

async function startPod(rt: Runtime, image: string): Promise<{ pod: RunningPod; sample: StartSample }> {
  const name = `bench-${rt.name}-${++podSeq}`;
  const logDir = join(rt.logRoot, name);
  mkdirSync(logDir, { recursive: true });
  const config = podSpec(name, logDir);
  const opts = { timeoutMs: CALL_TIMEOUT_MS };
  const t0 = performance.now();
  const { pod_sandbox_id: podId } = await rt.client.call("RuntimeService", "RunPodSandbox", { config }, opts);
  const t1 = performance.now();
  const { container_id: containerId } = await rt.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: sleepContainer(image), sandbox_config: config }, opts);
  const t2 = performance.now();
  await rt.client.call("RuntimeService", "StartContainer", { container_id: containerId }, opts);
  const t3 = performance.now();
  return { pod: { podId, containerId }, sample: { runPod: t1 - t0, create: t2 - t1, start: t3 - t2, total: t3 - t0 } };
}

async function teardownPod(rt: Runtime, pod: RunningPod): Promise<TeardownSample> {
  const opts = { timeoutMs: CALL_TIMEOUT_MS };
  const t0 = performance.now();
  await rt.client.call("RuntimeService", "StopContainer", { container_id: pod.containerId, timeout: 0n }, opts);
  const t1 = performance.now();
  await rt.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: pod.podId }, opts);
  const t2 = performance.now();
  await rt.client.call("RuntimeService", "RemoveContainer", { container_id: pod.containerId }, opts);
  const t3 = performance.now();
  await rt.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: pod.podId }, opts);
  const t4 = performance.now();
  return { stopContainer: t1 - t0, stopPod: t2 - t1, removeContainer: t3 - t2, removePod: t4 - t3, total: t4 - t0 };
}

/** One runtime, start to finish: fills `out` as it goes, so a failure keeps what was measured. */
async function measureRuntime(rt: Runtime, images: BenchImages, opts: PodsOptions, ctx: BenchContext, out: RuntimeResult): Promise<void> {
  const tag = `pods: ${rt.name}`;
  await Bun.sleep(opts.settleMs);
  out.idle = await readMemory(rt, []);
  await rt.pull(images);
  await Bun.sleep(opts.settleMs);
  out.zeroPods = await readMemory(rt, []);
  ctx.log(`${tag}: idle RSS ${fmt(kibToMiB(out.idle.daemonRss), 1)} MiB; starting ${opts.memoryPods} pods`);

  const startAll = async (): Promise<RunningPod[]> => {
    const running: RunningPod[] = [];
    for (let i = 0; i < opts.memoryPods; i++) {
      const { pod, sample } = await startPod(rt, images.busybox.ref);
      running.push(pod);
      out.containers.push(pod.containerId);
      out.firstStartMs ??= sample.total;
    }
    await Bun.sleep(opts.settleMs);
    return running;
  };
  let running = await startAll();
  out.withPods = await readMemory(rt, running);
  ctx.log(`${tag}: ${opts.memoryPods} pods: daemon RSS ${fmt(kibToMiB(out.withPods.daemonRss), 1)} MiB`);
  for (const pod of running.splice(0)) await teardownPod(rt, pod);
  await Bun.sleep(opts.settleMs);
  out.warmZero = await readMemory(rt, []);
  running = await startAll();
  out.warmWithPods = await readMemory(rt, running);
  for (const pod of running.splice(0)) await teardownPod(rt, pod);

  for (let i = 0; i < opts.runs; i++) {
    const { pod, sample } = await startPod(rt, images.busybox.ref);
    out.containers.push(pod.containerId);
    out.starts.push(sample);
    out.teardowns.push(await teardownPod(rt, pod));
  }
  const s = summarize(out.starts.map((x) => x.total));
  ctx.log(`${tag}: start median ${fmt(s.median, 1)} ms, p90 ${fmt(s.p90, 1)} ms over ${opts.runs} runs`);
}

/** Per-pod PSS (KiB) and its parts, between a reading without pods and one with N. */
export interface PodGrowth {
  total: number;
  daemon: number;
  monitor: number;
  shims: number;
  pause: number;
}

/** Per-pod PSS, KiB: steady (the target's figure) and cold, and the node-wide fixed cost. */
export interface PerPodMemory {
  /** N more pods once node-wide processes run and the daemon has served N before. */
  steady: PodGrowth;
  /** The daemon's first N pods: includes starting crib's monitor and both daemons' warm-up. */
  cold: PodGrowth;
  /** What runs per node whatever the pod count (crib's monitor), with no pod: its USS. */
  nodeFixed: number;
}

/** Summed PSS of the runtime's own processes in one reading, KiB. */
function runtimePss(m: MemoryReading): number {
  return m.daemonPss + m.monitorPss + m.shimPss + m.pausePss;
}

function growth(from: MemoryReading, to: MemoryReading, pods: number): PodGrowth {
  return {
    total: (runtimePss(to) - runtimePss(from)) / pods,
    daemon: (to.daemonPss - from.daemonPss) / pods,
    monitor: (to.monitorPss - from.monitorPss) / pods,
    shims: (to.shimPss - from.shimPss) / pods,
    pause: (to.pausePss - from.pausePss) / pods,
  };
}

export function perPodMemory(r: RuntimeResult, pods: number): PerPodMemory | undefined {
  if (r.zeroPods === undefined || r.withPods === undefined || r.warmZero === undefined || r.warmWithPods === undefined || pods <= 0) return undefined;
  return { steady: growth(r.warmZero, r.warmWithPods, pods), cold: growth(r.zeroPods, r.withPods, pods), nodeFixed: r.warmZero.monitorUss };
}

const mib = (kib: number | undefined, digits = 1): string => fmt(kibToMiB(kib), digits);

function buildTables(opts: PodsOptions, results: RuntimeResult[]): Table[] {
  const byName = (n: RuntimeName): RuntimeResult | undefined => results.find((r) => r.runtime === n);
  const ok = (r: RuntimeResult | undefined): r is RuntimeResult => r !== undefined && r.note === undefined;
  const network = "pods: host network (namespace_options.network = NODE) on both runtimes, ipc per pod, pid per container; one `sleep 3600` busybox container each";

  const startRows = results.map((r): string[] => {
    if (!ok(r) || r.starts.length === 0) return [r.runtime, r.note ?? "no samples"];
    const t = summarize(r.starts.map((s) => s.total));
    const part = (f: (s: StartSample) => number): string => fmt(median(r.starts.map(f)), 1);
    return [r.runtime, String(t.n), fmt(t.median, 1), fmt(t.p90, 1), fmt(t.min, 1), fmt(t.max, 1), part((s) => s.runPod), part((s) => s.create), part((s) => s.start), fmt(r.firstStartMs, 1)];
  });
  const startMedian = (n: RuntimeName): number | undefined => {
    const r = byName(n);
    return ok(r) && r.starts.length > 0 ? median(r.starts.map((s) => s.total)) : undefined;
  };
  const startRatio = ratio(startMedian("crib"), startMedian("containerd"));
  const cribStart = startMedian("crib");
  const ctdStart = startMedian("containerd");
  const startMet = cribStart === undefined || ctdStart === undefined ? "-" : cribStart <= START_TARGET_RATIO * ctdStart ? "met" : "NOT met";

  const teardownRows = results.map((r): string[] => {
    if (!ok(r) || r.teardowns.length === 0) return [r.runtime, r.note ?? "no samples"];
    const part = (f: (s: TeardownSample) => number): string => fmt(median(r.teardowns.map(f)), 1);
    const t = summarize(r.teardowns.map((s) => s.total));
    return [r.runtime, String(t.n), part((s) => s.stopContainer), part((s) => s.stopPod), part((s) => s.removeContainer), part((s) => s.removePod), fmt(t.median, 1), fmt(t.p90, 1)];
  });

  const daemonRows = results.map((r): string[] => {
    if (!ok(r) || r.idle === undefined || r.withPods === undefined) return [r.runtime, r.note ?? "no readings"];
    return [r.runtime, mib(r.idle.daemonRss), mib(r.zeroPods?.daemonRss), mib(r.withPods.daemonRss), mib(r.zeroPods?.daemonPss), mib(r.withPods.daemonPss)];
  });

  const per = (n: RuntimeName): PerPodMemory | undefined => {
    const r = byName(n);
    return ok(r) ? perPodMemory(r, opts.memoryPods) : undefined;
  };
  const memoryRows = results.map((r): string[] => {
    const p = ok(r) ? perPodMemory(r, opts.memoryPods) : undefined;
    if (p === undefined) return [r.runtime, r.note ?? "no readings"];
    const isCrib = r.runtime === "crib";
    const w = r.warmWithPods;
    return [
      r.runtime,
      mib(p.steady.total, 2),
      mib(p.steady.daemon, 2),
      isCrib ? mib(p.steady.monitor, 2) : "-",
      isCrib ? "-" : `${mib(p.steady.shims, 2)} (${w?.shims ?? 0})`,
      isCrib ? "-" : `${mib(p.steady.pause, 2)} (${w?.pauses ?? 0})`,
      mib(p.cold.total, 2),
      isCrib ? mib(p.nodeFixed, 1) : "-",
    ];
  });
  const cribPer = per("crib")?.steady.total;
  const ctdPer = per("containerd")?.steady.total;
  const memMet = cribPer === undefined || ctdPer === undefined ? "-" : cribPer <= MEMORY_TARGET_KIB && cribPer < ctdPer ? "met" : "NOT met";

  const errors = results.filter((r) => r.error !== undefined).map((r) => `${r.runtime} failed: ${r.error ?? ""}`);
  return [
    {
      title: `== pods: start (RunPodSandbox + CreateContainer + StartContainer), ${opts.runs} runs each ==`,
      headers: ["runtime", "runs", "median ms", "p90 ms", "min ms", "max ms", "run pod", "create", "start", "first pod"],
      rows: startRows,
      notes: [
        network,
        "one pod at a time, image already pulled; run pod/create/start: median ms of each call; first pod: the daemon's very first pod (crib starts its monitor then), not in the runs",
        `crib/containerd (median): ${startRatio}   target <= ${START_TARGET_RATIO}x: ${startMet}`,
        ...errors,
      ],
    },
    {
      title: `== pods: teardown per pod, ${opts.runs} runs each (median ms per call) ==`,
      headers: ["runtime", "runs", "stop ctr", "stop pod", "remove ctr", "remove pod", "total", "total p90"],
      rows: teardownRows,
      notes: ["kubelet order: StopContainer (timeout 0), StopPodSandbox, RemoveContainer, RemovePodSandbox"],
    },
    {
      title: `== pods: daemon memory, MiB (idle and with ${opts.memoryPods} running pods) ==`,
      headers: ["runtime", "RSS idle", "RSS pulled", `RSS ${opts.memoryPods} pods`, "PSS pulled", `PSS ${opts.memoryPods} pods`],
      rows: daemonRows,
      notes: ["idle: after start-up; pulled: images pulled, no pod yet; the daemon process alone (containerd's shims and crib's monitor are in the next table)"],
    },
    {
      title: `== pods: memory per running pod, MiB PSS (${opts.memoryPods} pods) ==`,
      headers: ["runtime", "per pod", "of it daemon", "monitor", "shim (n)", "pause (n)", `cold: first ${opts.memoryPods}`, "node-wide fixed"],
      rows: memoryRows,
      notes: [
        `per pod = (runtime processes' PSS with ${opts.memoryPods} pods - with none) / ${opts.memoryPods}, read after a first round of ${opts.memoryPods} pods was run and removed; workload processes left out on both`,
        "crib: daemon + `crib monitor`; containerd: daemon + containerd-shim-runc-v2 + pause processes",
        `cold = the same over the daemon's first ${opts.memoryPods} pods: it also holds one-time costs (crib starts its node-wide monitor with the first container; both daemons warm up: JIT, heap and allocator high-water marks)`,
        "node-wide fixed: crib's monitor with no pod, its private memory (USS: what it alone holds; one per node, like containerd's daemon; in neither per-pod figure)",
        "crib's daemon and monitor map the same executable, so shared pages' PSS is split between them: a part can go negative, the sum is what counts",
        `pause: a busybox \`sleep\` as sandbox image (${PAUSE_ENTRYPOINT.join(" ")}); the real pause binary is smaller; busybox pages are shared with the workloads, PSS splits them`,
        `crib per pod: ${mib(cribPer, 2)} MiB, containerd: ${mib(ctdPer, 2)} MiB   target <= 1 MB (${mib(MEMORY_TARGET_KIB, 2)} MiB) and below containerd: ${memMet}`,
      ],
    },
  ];
}

/** Runs the pod figures for each runtime in turn; every runtime is cleaned up before the next starts. */
export async function measurePods(ctx: BenchContext, opts: PodsOptions): Promise<PodsReport> {
  const reg = await ctx.registry();
  ctx.log(`pods: pushing busybox and a pause-like image to ${reg.host}`);
  const images = await pushBenchImages(reg);
  const results: RuntimeResult[] = [];
  for (const name of opts.runtimes ?? ["containerd", "crib"]) {
    const out: RuntimeResult = { runtime: name, starts: [], teardowns: [], dirs: [], pids: [], containers: [] };
    results.push(out);
    if (name === "crib" && !ctx.cribBuilt) {
      out.note = "not built (npm run build)";
      continue;
    }
    let rt: Runtime | undefined;
    try {
      rt = name === "containerd" ? await startContainerdRuntime(ctx, reg, images) : await startCribRuntime(ctx, reg);
      out.dirs = rt.dirs;
      await measureRuntime(rt, images, opts, ctx, out);
    } catch (err) {
      // containerd is the reference: if it cannot run pods, the benchmark itself is broken.
      if (name === "containerd") throw err;
      if (err instanceof CriError && err.code === status.UNIMPLEMENTED) {
        out.note = "not implemented yet";
      } else {
        out.note = "failed (see notes)";
        out.error = err instanceof Error ? err.message : String(err);
      }
      ctx.log(`pods: crib ${out.note}${out.error === undefined ? "" : `: ${out.error}`}`);
    } finally {
      if (rt !== undefined) {
        out.pids = rt.pids();
        await rt.stop();
      }
    }
  }
  return { options: opts, results, tables: buildTables(opts, results) };
}

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export const podsBenchmark: Benchmark = {
  name: "pods",
  description: "pod start, teardown and memory per running pod (BENCH_PODS = pods for memory, default 10)",
  async run(ctx: BenchContext): Promise<Table[]> {
    const opts: PodsOptions = { runs: ctx.runs ?? DEFAULT_RUNS, memoryPods: envInt("BENCH_PODS", DEFAULT_MEMORY_PODS), settleMs: DEFAULT_SETTLE_MS };
    return (await measurePods(ctx, opts)).tables;
  },
};
