// One reading of a cgroup's counters, the same shape for cgroup v1 and v2, with
// the figures the kubelet and cAdvisor derive (working set = usage - inactive_file).
import { readFile } from "node:fs/promises";
import { countLines, limitValue, parseKeyedFile, parsePsi, parseSingleValue, type Psi } from "./cgroup_files.ts";

/** Where a cgroup's files are: one dir (v2), or one dir per controller (v1). */
export type CgroupDirs =
  | { version: 2; dir: string }
  | { version: 1; cpu?: string; cpuacct?: string; memory?: string; pids?: string };

export interface CpuSample {
  /** Cumulative CPU time, ns. */
  usageNs: bigint;
  userNs?: bigint;
  systemNs?: bigint;
  periods?: bigint;
  throttledPeriods?: bigint;
  throttledNs?: bigint;
  psi?: Psi;
}

export interface MemorySample {
  usage: bigint;
  /** usage - inactive_file (never below 0): what the kubelet evicts on. */
  workingSet: bigint;
  rss: bigint;
  cache: bigint;
  mappedFile: bigint;
  pgfault: bigint;
  pgmajfault: bigint;
  /** Absent when unlimited. */
  limit?: bigint;
  maxUsage?: bigint;
  swapUsage?: bigint;
  /** Absent when unlimited or without swap accounting. */
  swapLimit?: bigint;
  oomKills?: bigint;
  failcnt?: bigint;
  psi?: Psi;
}

export interface CgroupSample {
  cpu?: CpuSample;
  memory?: MemorySample;
  /** pids.current counts tasks (threads); processes counts cgroup.procs. */
  pids?: { current: bigint; max?: bigint };
  processes?: number;
  io?: { psi?: Psi };
}

/** A cgroup file's text, or undefined when it (or its cgroup) does not exist. */
async function read(dir: string | undefined, name: string): Promise<string | undefined> {
  if (dir === undefined) return undefined;
  try {
    return await readFile(`${dir}/${name}`, "utf8");
  } catch {
    return undefined;
  }
}

function single(text: string | undefined): bigint | undefined {
  const v = text === undefined ? undefined : parseSingleValue(text);
  return v === "max" ? undefined : v;
}

function clampSub(a: bigint, b: bigint): bigint {
  return a > b ? a - b : 0n;
}

/** Read a cgroup. Parts whose files are missing (no such controller, cgroup gone) are left out. */
export function readCgroupSample(dirs: CgroupDirs): Promise<CgroupSample> {
  return dirs.version === 2 ? readV2(dirs.dir) : readV1(dirs);
}

async function readV2(dir: string): Promise<CgroupSample> {
  const names = [
    "cpu.stat", "cpu.pressure", "memory.current", "memory.stat", "memory.max", "memory.peak",
    "memory.swap.current", "memory.swap.max", "memory.events", "memory.pressure", "io.pressure",
    "pids.current", "pids.max", "cgroup.procs",
  ] as const;
  const texts = await Promise.all(names.map((n) => read(dir, n)));
  const f = Object.fromEntries(names.map((n, i) => [n, texts[i]])) as Record<(typeof names)[number], string | undefined>;
  const out: CgroupSample = {};

  if (f["cpu.stat"] !== undefined) {
    const s = parseKeyedFile(f["cpu.stat"]);
    const us = (k: string) => (s.has(k) ? s.get(k)! * 1000n : undefined);
    out.cpu = {
      usageNs: us("usage_usec") ?? 0n,
      userNs: us("user_usec"),
      systemNs: us("system_usec"),
      periods: s.get("nr_periods"),
      throttledPeriods: s.get("nr_throttled"),
      throttledNs: us("throttled_usec"),
      psi: f["cpu.pressure"] !== undefined ? parsePsi(f["cpu.pressure"]) : undefined,
    };
  }

  const usage = single(f["memory.current"]);
  if (usage !== undefined && f["memory.stat"] !== undefined) {
    const s = parseKeyedFile(f["memory.stat"]);
    const g = (k: string) => s.get(k) ?? 0n;
    const swapMax = f["memory.swap.max"] !== undefined ? parseSingleValue(f["memory.swap.max"]) : undefined;
    out.memory = {
      usage,
      workingSet: clampSub(usage, g("inactive_file")),
      rss: g("anon"),
      cache: g("file"),
      mappedFile: g("file_mapped"),
      pgfault: g("pgfault"),
      pgmajfault: g("pgmajfault"),
      limit: limitValue(f["memory.max"] !== undefined ? parseSingleValue(f["memory.max"]) : undefined),
      maxUsage: single(f["memory.peak"]),
      swapUsage: single(f["memory.swap.current"]),
      swapLimit: limitValue(swapMax),
      oomKills: f["memory.events"] !== undefined ? parseKeyedFile(f["memory.events"]).get("oom_kill") : undefined,
      psi: f["memory.pressure"] !== undefined ? parsePsi(f["memory.pressure"]) : undefined,
    };
  }

  const pids = single(f["pids.current"]);
  if (pids !== undefined) out.pids = { current: pids, max: single(f["pids.max"]) };
  if (f["cgroup.procs"] !== undefined) out.processes = countLines(f["cgroup.procs"]);
  if (f["io.pressure"] !== undefined) out.io = { psi: parsePsi(f["io.pressure"]) };
  return out;
}

async function readV1(d: Extract<CgroupDirs, { version: 1 }>): Promise<CgroupSample> {
  const [usage, usageUser, usageSys, acctStat, cpuStat, memUsage, memStat, memLimit, memMax, memswUsage, memswLimit, oomControl, failcnt, pidsCurrent, pidsMax, procs] =
    await Promise.all([
      read(d.cpuacct, "cpuacct.usage"),
      read(d.cpuacct, "cpuacct.usage_user"),
      read(d.cpuacct, "cpuacct.usage_sys"),
      read(d.cpuacct, "cpuacct.stat"),
      read(d.cpu, "cpu.stat"),
      read(d.memory, "memory.usage_in_bytes"),
      read(d.memory, "memory.stat"),
      read(d.memory, "memory.limit_in_bytes"),
      read(d.memory, "memory.max_usage_in_bytes"),
      read(d.memory, "memory.memsw.usage_in_bytes"),
      read(d.memory, "memory.memsw.limit_in_bytes"),
      read(d.memory, "memory.oom_control"),
      read(d.memory, "memory.failcnt"),
      read(d.pids, "pids.current"),
      read(d.pids, "pids.max"),
      read(d.memory ?? d.pids ?? d.cpuacct, "cgroup.procs"),
    ]);
  const out: CgroupSample = {};

  const usageNs = single(usage);
  if (usageNs !== undefined) {
    // cpuacct.stat is in USER_HZ ticks (100 a second on Linux); the _user/_sys files are ns.
    const ticks = acctStat !== undefined ? parseKeyedFile(acctStat) : new Map<string, bigint>();
    const fromTicks = (k: string) => (ticks.has(k) ? ticks.get(k)! * 10_000_000n : undefined);
    const throttle = cpuStat !== undefined ? parseKeyedFile(cpuStat) : new Map<string, bigint>();
    out.cpu = {
      usageNs,
      userNs: single(usageUser) ?? fromTicks("user"),
      systemNs: single(usageSys) ?? fromTicks("system"),
      periods: throttle.get("nr_periods"),
      throttledPeriods: throttle.get("nr_throttled"),
      throttledNs: throttle.get("throttled_time"),
    };
  }

  const memUsed = single(memUsage);
  if (memUsed !== undefined && memStat !== undefined) {
    const s = parseKeyedFile(memStat);
    // total_* include child cgroups (the hierarchy below this one).
    const g = (k: string) => s.get(`total_${k}`) ?? s.get(k) ?? 0n;
    const memsw = single(memswUsage);
    const memswMax = limitValue(memswLimit !== undefined ? parseSingleValue(memswLimit) : undefined);
    const memMaxLimit = limitValue(memLimit !== undefined ? parseSingleValue(memLimit) : undefined);
    out.memory = {
      usage: memUsed,
      workingSet: clampSub(memUsed, g("inactive_file")),
      rss: g("rss"),
      cache: g("cache"),
      mappedFile: g("mapped_file"),
      pgfault: g("pgfault"),
      pgmajfault: g("pgmajfault"),
      limit: memMaxLimit,
      maxUsage: single(memMax),
      swapUsage: memsw !== undefined ? clampSub(memsw, memUsed) : undefined,
      swapLimit: memswMax !== undefined ? clampSub(memswMax, memMaxLimit ?? 0n) : undefined,
      oomKills: oomControl !== undefined ? parseKeyedFile(oomControl).get("oom_kill") : undefined,
      failcnt: single(failcnt),
    };
  }

  const pids = single(pidsCurrent);
  if (pids !== undefined) out.pids = { current: pids, max: single(pidsMax) };
  if (procs !== undefined) out.processes = countLines(procs);
  return out;
}
