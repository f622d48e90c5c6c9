// The edge budget (issue 16): every figure of the table, crib beside Debian's
// containerd measured in the same run, with its target and whether it is met.
//
//   bun test/bench/run.ts budget [--runs N]
//
// The figures come from the other benchmarks' measurement functions (footprint.ts:
// start-up and idle memory; pull.ts: measurePulls; pods.ts: measurePods); this file
// adds what none of them measured: unary RPC latency through one kubelet-like client
// (test/go/criunary, grpc-go; grpc-js if Go is missing), the zstd -19 download size,
// and Bun's floor: what a compiled Bun program that only listens costs by itself.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { CriClient } from "../../src/ctl/client.ts";
import { CRIB_BIN, requireBinary, startCrib } from "../helpers/daemon.ts";
import { CONTAINERD_BIN, startContainerd } from "./containerd.ts";
import { CONTAINERD_FILES, measureStartup, POLL_MS, timedStart } from "./footprint.ts";
import { measurePods, perPodMemory } from "./pods.ts";
import { measurePulls } from "./pull.ts";
import type { BenchContext, Benchmark } from "./run.ts";
import { fmt, median, readProcStatus, readSmapsRollup, summarize, type Table } from "./stats.ts";

const DEFAULT_STARTUP_RUNS = 7;
const DEFAULT_PULL_RUNS = 5;
const DEFAULT_POD_RUNS = 20;
/** Pods for the monitor's reading (pods.ts runs and removes them before reading it idle). */
const MONITOR_PODS = 3;
/** Unary latency: calls per method after the warm-up, and rounds (alternating runtimes). */
const UNARY_CALLS = 5000;
const UNARY_WARMUP = 500;
const UNARY_ROUNDS = 3;
const GO_CLIENT_DIR = join(import.meta.dir, "../go/criunary");
/** The compiled Go client, Bun's floor program and zstd sizes survive between runs here. */
const CACHE_DIR = join(tmpdir(), "crib-bench-cache");

type Runtime = "crib" | "containerd";
type Target = { kind: "ratio"; max: number } | { kind: "absolute"; max: number; unit: string } | { kind: "reported" };

interface BudgetRow {
  figure: string;
  crib: number | undefined;
  containerd: number | undefined;
  digits: number;
  target: Target;
}

function targetText(t: Target): string {
  if (t.kind === "ratio") return `<= ${t.max}x`;
  if (t.kind === "absolute") return `<= ${t.max} ${t.unit}`;
  return "reported";
}

function isMet(r: BudgetRow): string {
  if (r.target.kind === "reported" || r.crib === undefined || !Number.isFinite(r.crib)) return "-";
  if (r.target.kind === "absolute") return r.crib <= r.target.max ? "yes" : "NO";
  if (r.containerd === undefined || !Number.isFinite(r.containerd) || r.containerd === 0) return "-";
  return r.crib <= r.target.max * r.containerd ? "yes" : "NO";
}

function ratioText(r: BudgetRow): string {
  if (r.crib === undefined || r.containerd === undefined || !Number.isFinite(r.crib) || !Number.isFinite(r.containerd) || r.containerd === 0) return "-";
  return `${(r.crib / r.containerd).toFixed(2)}x`;
}

/** "median (min-max, n)" for a note line. */
function spread(ms: number[], digits = 0): string {
  const s = summarize(ms);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}-${fmt(s.max, digits)}, n=${s.n})`;
}

// ---- download size ----

/**
 * Bytes of `zstd -19 -T2` of a file (crib takes ~50 s), cached by a hash of its content:
 * `npm run bench` rebuilds dist/crib each time, which changes its mtime but rarely its bytes.
 */
async function zstd19Bytes(file: string): Promise<number> {
  const hash = Bun.hash(new Uint8Array(await Bun.file(file).arrayBuffer())).toString(16);
  mkdirSync(CACHE_DIR, { recursive: true });
  const key = join(CACHE_DIR, `zstd19-${basename(file)}-${hash}`);
  if (existsSync(key)) return Number(readFileSync(key, "utf8"));
  const proc = Bun.spawn(["zstd", "-19", "-T2", "-c", "-q", file], { stdout: "pipe", stderr: "pipe" });
  let bytes = 0;
  for await (const chunk of proc.stdout) bytes += chunk.length;
  if ((await proc.exited) !== 0) throw new Error(`zstd -19 ${file} failed: ${await new Response(proc.stderr).text()}`);
  writeFileSync(key, String(bytes));
  return bytes;
}

async function downloadSizes(ctx: BenchContext): Promise<{ crib: { raw: number; zstd: number }; containerd: { raw: number; zstd: number } }> {
  ctx.log("budget: zstd -19 of dist/crib and of containerd + shim (cached after the first run)");
  const sum = async (files: string[]) => {
    let raw = 0;
    let zstd = 0;
    for (const f of files) {
      raw += statSync(f).size;
      zstd += await zstd19Bytes(f);
    }
    return { raw, zstd };
  };
  return { crib: await sum([requireBinary()]), containerd: await sum(CONTAINERD_FILES) };
}

// ---- Bun's floor ----

/** The floor program: listens on the unix socket argv[2] names, writes one byte to each connection and closes it. */
const FLOOR_SOURCE = `Bun.listen({ unix: process.argv[2], socket: { open(s) { s.end("."); }, data() {} } });\n`;
/** crib's build flags (build/compile.ts) without its defines, --splitting (one entry) and bytecode-order profile. */
const FLOOR_FLAGS = ["--compile", "--minify-syntax", "--minify-whitespace", "--bytecode", "--format", "esm", "--compile-jit-policy=64"];
/** As footprint.ts reads crib: idle memory 3 s after the last start answered. */
const FLOOR_SETTLE_MS = 3000;

interface FloorFigures {
  ms: number[];
  rssKiB?: number;
  anonKiB?: number;
  raw: number;
  zstd: number;
}

/** Compiles the floor program with this Bun (the one `npm run bench` builds crib with), once per Bun and source. */
function floorBinary(ctx: BenchContext): string {
  const key = Bun.hash(`${Bun.revision}\0${FLOOR_FLAGS.join(" ")}\0${FLOOR_SOURCE}`).toString(16);
  const bin = join(CACHE_DIR, `bun-floor-${key}`);
  if (existsSync(bin)) return bin;
  ctx.log(`budget: compiling Bun's floor program (Bun ${Bun.version})`);
  mkdirSync(CACHE_DIR, { recursive: true });
  const dir = mkdtempSync(join(CACHE_DIR, "bun-floor-build-"));
  try {
    writeFileSync(join(dir, "floor.js"), FLOOR_SOURCE);
    // cwd: bun build --compile leaves a temporary .bun-build file in it while it works.
    const r = Bun.spawnSync([process.execPath, "build", ...FLOOR_FLAGS, "--outfile", join(dir, "floor"), join(dir, "floor.js")], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`bun build of the floor program failed:\n${r.stderr.toString()}`);
    renameSync(join(dir, "floor"), bin);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return bin;
}

/** One probe: connect to `socket` and wait up to 1 s for the floor program's byte. */
function floorAnswers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(socket);
    c.setTimeout(1000, () => c.destroy());
    c.once("data", () => {
      resolve(true);
      c.destroy();
    });
    c.once("error", () => undefined); // "close" follows
    c.once("close", () => resolve(false));
  });
}

/** The floor program's start-ups (`runs` after an untimed one, as crib's), idle memory after the last, and its size. */
async function measureBunFloor(ctx: BenchContext, runs: number): Promise<FloorFigures> {
  const bin = floorBinary(ctx);
  ctx.log(`budget: ${runs} starts of Bun's floor program`);
  const dir = mkdtempSync(join(tmpdir(), "crib-bench-floor-"));
  const socket = join(dir, "floor.sock");
  let live: Bun.Subprocess | undefined;
  const release = async () => {
    live?.kill("SIGKILL");
    await live?.exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const untrack = ctx.track("Bun floor program", release);
  const out: FloorFigures = { ms: [], raw: statSync(bin).size, zstd: 0 };
  try {
    for (let i = 0; i <= runs; i++) {
      rmSync(socket, { force: true }); // a killed listener leaves its socket file behind: listen would fail with EADDRINUSE
      const s = await timedStart([bin, socket], socket, "Bun's floor program", floorAnswers);
      live = s.proc;
      if (i > 0) out.ms.push(s.ms);
      if (i === runs) {
        await Bun.sleep(FLOOR_SETTLE_MS);
        out.rssKiB = readSmapsRollup(s.proc.pid)?.rss;
        out.anonKiB = readProcStatus(s.proc.pid)?.rssAnon;
      }
      s.proc.kill("SIGTERM");
      await s.proc.exited;
      live = undefined;
    }
  } finally {
    await release();
    untrack();
  }
  out.zstd = await zstd19Bytes(bin);
  return out;
}

// ---- unary latency ----

interface UnaryFigures {
  client: string;
  /** Per method: the median and p90 (µs) of each round. */
  version: { median: number[]; p90: number[] };
  list: { median: number[]; p90: number[] };
}

interface MethodSummary {
  n: number;
  medianUs: number;
  p90Us: number;
}

/** Builds test/go/criunary (GOPATH mode, Debian's grpc-go) once per source change; undefined without Go. */
function goClient(ctx: BenchContext): string | undefined {
  if (!existsSync("/usr/share/gocode/src/google.golang.org/grpc") || Bun.spawnSync(["go", "version"], { stdout: "ignore", stderr: "ignore" }).exitCode !== 0) return undefined;
  const src = join(GO_CLIENT_DIR, "main.go");
  const st = statSync(src);
  mkdirSync(CACHE_DIR, { recursive: true });
  const bin = join(CACHE_DIR, `criunary-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (existsSync(bin)) return bin;
  ctx.log("budget: building test/go/criunary");
  const r = Bun.spawnSync(["go", "build", "-o", bin, "."], {
    cwd: GO_CLIENT_DIR,
    env: { ...process.env, GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOCACHE: join(CACHE_DIR, "gocache"), GOFLAGS: "" },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`go build of ${GO_CLIENT_DIR} failed:\n${r.stderr.toString()}`);
  return bin;
}

async function unaryGo(bin: string, socket: string): Promise<Record<string, MethodSummary>> {
  const proc = Bun.spawn([bin, socket, String(UNARY_CALLS), String(UNARY_WARMUP)], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`criunary ${socket} failed (${code}): ${err}`);
  return JSON.parse(out) as Record<string, MethodSummary>;
}

/** The fallback: the same loop through grpc-js (one channel, sequential calls). */
async function unaryGrpcJs(socket: string): Promise<Record<string, MethodSummary>> {
  const client = new CriClient(`unix://${socket}`);
  try {
    const run = async (call: () => Promise<unknown>): Promise<MethodSummary> => {
      const us: number[] = [];
      for (let i = 0; i < UNARY_WARMUP + UNARY_CALLS; i++) {
        const t0 = performance.now();
        await call();
        if (i >= UNARY_WARMUP) us.push((performance.now() - t0) * 1000);
      }
      const s = summarize(us);
      return { n: s.n, medianUs: s.median, p90Us: s.p90 };
    };
    return {
      Version: await run(() => client.call("RuntimeService", "Version", { version: "v1" })),
      ListPodSandbox: await run(() => client.call("RuntimeService", "ListPodSandbox", {})),
    };
  } finally {
    client.close();
  }
}

/** Both daemons idle with zero pods, measured in alternating rounds through the same client. */
async function measureUnary(ctx: BenchContext): Promise<Record<Runtime, UnaryFigures>> {
  const bin = goClient(ctx);
  const clientName = bin === undefined ? "grpc-js (Go not installed)" : "grpc-go (test/go/criunary)";
  const measure = (socket: string) => (bin === undefined ? unaryGrpcJs(socket) : unaryGo(bin, socket));
  const ctd = await startContainerd();
  const untrackCtd = ctx.track("containerd (budget unary)", ctd.stop);
  try {
    const crib = await startCrib({ log: { level: "info" } });
    const releaseCrib = async () => {
      if (crib.proc.exitCode === null && crib.proc.signalCode === null) await crib.stop();
      crib.cleanup();
    };
    const untrackCrib = ctx.track("crib (budget unary)", releaseCrib);
    try {
      const empty = (): UnaryFigures => ({ client: clientName, version: { median: [], p90: [] }, list: { median: [], p90: [] } });
      const out: Record<Runtime, UnaryFigures> = { crib: empty(), containerd: empty() };
      const sockets: Record<Runtime, string> = { crib: crib.socket, containerd: ctd.socket };
      for (let round = 0; round < UNARY_ROUNDS; round++) {
        const order: Runtime[] = round % 2 === 0 ? ["containerd", "crib"] : ["crib", "containerd"];
        for (const rt of order) {
          const r = await measure(sockets[rt]);
          const v = r.Version;
          const l = r.ListPodSandbox;
          if (v === undefined || l === undefined) throw new Error(`unary client printed no Version/ListPodSandbox figures for ${rt}`);
          out[rt].version.median.push(v.medianUs);
          out[rt].version.p90.push(v.p90Us);
          out[rt].list.median.push(l.medianUs);
          out[rt].list.p90.push(l.p90Us);
          ctx.log(`budget: unary round ${round + 1}/${UNARY_ROUNDS} ${rt}: Version ${fmt(v.medianUs, 0)} µs, ListPodSandbox ${fmt(l.medianUs, 0)} µs (medians)`);
        }
      }
      return out;
    } finally {
      await releaseCrib();
      untrackCrib();
    }
  } finally {
    await ctd.stop();
    untrackCtd();
  }
}

// ---- header ----

function firstLine(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return r.exitCode === 0 ? (r.stdout.toString().split("\n")[0] ?? "").trim() : `(${argv.join(" ")} failed)`;
}

function machineLine(): string {
  const model = cpus()[0]?.model ?? "unknown CPU";
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  return `machine: Linux ${release()}, ${availableParallelism()} cores (${model}), load average at start ${load}`;
}

/** Other crib/containerd processes on the machine: a reader of the figures should know. */
function othersRunning(): number {
  let n = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv0 = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0")[0] ?? "";
      if (/(^|\/)(crib[^/]*|containerd)$/.test(argv0)) n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

export const budgetBenchmark: Benchmark = {
  name: "budget",
  description: "the edge budget (issue 16): idle memory, start-up, unary RPCs, pull, download size, pods; crib vs containerd, target and met",
  async run(ctx: BenchContext): Promise<Table[]> {
    if (!ctx.cribBuilt) throw new Error(`${CRIB_BIN} is missing: npm run build`);
    const header = [machineLine(), `crib: ${firstLine([CRIB_BIN, "--version"])}`, `containerd: ${firstLine([CONTAINERD_BIN, "--version"])}`, `crib/containerd processes already running on the machine: ${othersRunning()}`];
    for (const h of header) ctx.log(h);
    const startupRuns = ctx.runs ?? DEFAULT_STARTUP_RUNS;
    const pullRuns = ctx.runs ?? DEFAULT_PULL_RUNS;
    const podRuns = ctx.runs ?? DEFAULT_POD_RUNS;

    const size = await downloadSizes(ctx);
    const startup = await measureStartup(ctx, startupRuns);
    const floor = await measureBunFloor(ctx, startupRuns);
    const unary = await measureUnary(ctx);
    const warmPull = await measurePulls(ctx, { mode: "warm-defaults", runs: pullRuns });
    const freshPull = await measurePulls(ctx, { mode: "fresh-syncfs-off", runs: pullRuns });
    const pods = await measurePods(ctx, { runs: podRuns, memoryPods: MONITOR_PODS, settleMs: 2000 });

    const podResult = (rt: Runtime) => {
      const r = pods.results.find((x) => x.runtime === rt);
      if (r === undefined || r.note !== undefined) throw new Error(`pods: ${rt} gave no figures: ${r?.note ?? "missing"} ${r?.error ?? ""}`);
      return r;
    };
    const podStart = { crib: podResult("crib").starts.map((s) => s.total), containerd: podResult("containerd").starts.map((s) => s.total) };
    const podTeardown = { crib: podResult("crib").teardowns.map((s) => s.total), containerd: podResult("containerd").teardowns.map((s) => s.total) };
    const monitorUssKiB = perPodMemory(podResult("crib"), MONITOR_PODS)?.nodeFixed;
    const mibOf = (kib: number | undefined) => (kib === undefined ? undefined : kib / 1024);
    const u = (rt: Runtime, m: "version" | "list") => median(unary[rt][m].median);

    const rows: BudgetRow[] = [
      { figure: "idle daemon RSS, MiB (3 s after start-up)", crib: mibOf(startup.crib.rssKiB), containerd: mibOf(startup.containerd.rssKiB), digits: 1, target: { kind: "ratio", max: 0.8 } },
      { figure: "  of it RssAnon, MiB", crib: mibOf(startup.crib.anonKiB), containerd: mibOf(startup.containerd.anonKiB), digits: 1, target: { kind: "reported" } },
      { figure: "  PSS, MiB", crib: mibOf(startup.crib.pssKiB), containerd: mibOf(startup.containerd.pssKiB), digits: 1, target: { kind: "reported" } },
      { figure: "  Bun floor: a compiled listener, MiB", crib: mibOf(floor.rssKiB), containerd: undefined, digits: 1, target: { kind: "reported" } },
      { figure: "  Bun floor: of it RssAnon, MiB", crib: mibOf(floor.anonKiB), containerd: undefined, digits: 1, target: { kind: "reported" } },
      { figure: "monitor idle USS, MiB", crib: mibOf(monitorUssKiB), containerd: undefined, digits: 1, target: { kind: "absolute", max: 9, unit: "MiB" } },
      { figure: "start-up to serving socket, ms (median)", crib: median(startup.crib.ms), containerd: median(startup.containerd.ms), digits: 0, target: { kind: "ratio", max: 0.5 } },
      { figure: "  Bun floor: spawn to first answer, ms (median)", crib: median(floor.ms), containerd: undefined, digits: 0, target: { kind: "reported" } },
      { figure: "unary Version, µs (median)", crib: u("crib", "version"), containerd: u("containerd", "version"), digits: 0, target: { kind: "ratio", max: 0.8 } },
      { figure: "unary ListPodSandbox (0 pods), µs (median)", crib: u("crib", "list"), containerd: u("containerd", "list"), digits: 0, target: { kind: "ratio", max: 0.8 } },
      { figure: "cold pull 60 MB/5 layers, warm daemons, defaults, ms", crib: median(warmPull.crib), containerd: median(warmPull.containerd), digits: 0, target: { kind: "ratio", max: 0.6 } },
      { figure: "  same, fresh daemon per pull, crib syncFs off, ms", crib: median(freshPull.crib), containerd: median(freshPull.containerd), digits: 0, target: { kind: "reported" } },
      { figure: "download size, zstd -19, MB", crib: size.crib.zstd / 1e6, containerd: size.containerd.zstd / 1e6, digits: 1, target: { kind: "absolute", max: 42.5, unit: "MB" } },
      { figure: "  Bun floor: a compiled listener, MB", crib: floor.zstd / 1e6, containerd: undefined, digits: 1, target: { kind: "reported" } },
      { figure: "pod start (run+create+start), ms (median)", crib: median(podStart.crib), containerd: median(podStart.containerd), digits: 1, target: { kind: "ratio", max: 0.4 } },
      { figure: "pod teardown, ms (median)", crib: median(podTeardown.crib), containerd: median(podTeardown.containerd), digits: 1, target: { kind: "ratio", max: 0.3 } },
    ];
    const p90 = (rt: Runtime, m: "version" | "list") => median(unary[rt][m].p90);
    const notes = [
      `start-up: ${startupRuns} restarts each on an initialised root, spawn to the first answered CRI Version; crib ${spread(startup.crib.ms)}, containerd ${spread(startup.containerd.ms)} ms (median (min-max, n))`,
      `idle memory: the last start-up's daemon, ${fmt((startup.crib.rssKiB ?? NaN) / 1024, 1)} vs ${fmt((startup.containerd.rssKiB ?? NaN) / 1024, 1)} MiB RSS; crib from a private copy of dist/crib`,
      `unary: ${unary.crib.client}, one connection, sequential calls, ${UNARY_WARMUP} warm-up calls discarded then ${UNARY_CALLS} timed per method; ${UNARY_ROUNDS} rounds alternating runtimes, median of the round medians; both daemons idle with zero pods`,
      `  p90 µs: Version crib ${fmt(p90("crib", "version"), 0)} / containerd ${fmt(p90("containerd", "version"), 0)}; ListPodSandbox crib ${fmt(p90("crib", "list"), 0)} / containerd ${fmt(p90("containerd", "list"), 0)}`,
      `  round medians µs: Version crib [${unary.crib.version.median.map((x) => x.toFixed(0)).join(", ")}] containerd [${unary.containerd.version.median.map((x) => x.toFixed(0)).join(", ")}]; ListPodSandbox crib [${unary.crib.list.median.map((x) => x.toFixed(0)).join(", ")}] containerd [${unary.containerd.list.median.map((x) => x.toFixed(0)).join(", ")}]`,
      `pull warm: one daemon each kept running, RemoveImage + PullImage ${pullRuns} times after an untimed first pull; crib ${spread(warmPull.crib)}, containerd ${spread(warmPull.containerd)} ms`,
      `pull fresh: a new daemon per pull (crib syncFs off, as containerd 1.6); crib ${spread(freshPull.crib)}, containerd ${spread(freshPull.containerd)} ms`,
      `download: dist/crib raw ${fmt(size.crib.raw / 1e6, 1)} MB; containerd + containerd-shim-runc-v2 raw ${fmt(size.containerd.raw / 1e6, 1)} MB (runc, needed by both, not counted); zstd -19 -T2; MB = 10^6 bytes`,
      `pods: ${podRuns} start + teardown cycles each, host network, image pulled; start crib ${spread(podStart.crib, 1)}, containerd ${spread(podStart.containerd, 1)} ms; teardown crib ${spread(podTeardown.crib, 1)}, containerd ${spread(podTeardown.containerd, 1)} ms`,
      `Bun floor (crib column): \`${FLOOR_SOURCE.trim()}\` compiled by Bun ${Bun.version} with crib's flags (${FLOOR_FLAGS.join(" ")}; no bytecode-order profile), raw ${fmt(floor.raw / 1e6, 1)} MB;`,
      `  start-up: ${startupRuns} starts after an untimed one, spawn to the first connect that reads its byte (crib's probe is a gRPC Version call, a new HTTP/2 client per try), polled every ${POLL_MS} ms: ${spread(floor.ms)} ms; idle memory ${FLOOR_SETTLE_MS / 1000} s after the last start`,
      `monitor: \`crib monitor\`'s private memory (USS) with no pod, after ${MONITOR_PODS} pods ran and were removed; containerd has no such process (its shims are per pod)`,
    ];
    return [
      {
        title: ["== budget: the edge budget (issue 16), crib beside containerd in the same run ==", ...header].join("\n"),
        headers: ["figure", "crib", "containerd", "ratio", "target", "met"],
        rows: rows.map((r) => [r.figure, fmt(r.crib, r.digits), fmt(r.containerd, r.digits), ratioText(r), targetText(r.target), isMet(r)]),
        notes,
      },
    ];
  },
};
