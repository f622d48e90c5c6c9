// Figures for benchmarks: order statistics over samples, a plain-text table, and
// memory readers for a process (and its descendants) from /proc.
import { readFileSync, readdirSync } from "node:fs";

export interface Summary {
  n: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p90: number;
  p99: number;
}

/** The p-th percentile (0..100) with linear interpolation between closest ranks. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo] ?? NaN;
  const b = sorted[hi] ?? NaN;
  return a + (b - a) * (rank - lo);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function summarize(samples: readonly number[]): Summary {
  const n = samples.length;
  return {
    n,
    min: n === 0 ? NaN : Math.min(...samples),
    max: n === 0 ? NaN : Math.max(...samples),
    mean: n === 0 ? NaN : samples.reduce((s, x) => s + x, 0) / n,
    median: median(samples),
    p90: percentile(samples, 90),
    p99: percentile(samples, 99),
  };
}

/** A number with `digits` decimals, or "-" when it is not a finite number. */
export function fmt(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);
}

/** "0.84x" style ratio a/b, "-" if either side is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "-";
  return `${(a / b).toFixed(2)}x`;
}

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  /** Lines printed under the table (units, caveats, "not implemented yet"). */
  notes?: string[];
}

/**
 * Renders a table: first column left-aligned, the others right-aligned (numbers). A row
 * of two cells in a wider table is a remark that spans the other columns, e.g.
 * ["crib", "not implemented yet"].
 */
export function formatTable(t: Table): string {
  const cols = t.headers.length;
  const spans = (r: string[]): boolean => cols > 2 && r.length === 2;
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (spans(r) && i > 0 ? 0 : (r[i] ?? "").length))));
  const cell = (s: string, i: number): string => (i === 0 ? s.padEnd(widths[i] ?? 0) : s.padStart(widths[i] ?? 0));
  const line = (r: string[]): string =>
    Array.from({ length: cols }, (_, i) => cell(r[i] ?? "", i))
      .join("  ")
      .trimEnd();
  const remark = (r: string[]): string => `${cell(r[0] ?? "", 0)}  ${r[1] ?? ""}`;
  const out = [t.title, line(t.headers), widths.map((w) => "-".repeat(w)).join("  "), ...t.rows.map((r) => (spans(r) ? remark(r) : line(r)))];
  for (const n of t.notes ?? []) out.push(n);
  return out.join("\n");
}

/** Memory figures from /proc/<pid>/status, in KiB (undefined if the field is absent). */
export interface ProcStatus {
  vmRSS?: number;
  /** Peak RSS over the process's lifetime. */
  vmHWM?: number;
  rssAnon?: number;
  rssFile?: number;
  rssShmem?: number;
}

function kbFields(text: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) fields.set(m[1], Number(m[2]));
  }
  return fields;
}

/** Reads /proc/<pid>/status; undefined if the process is gone. */
export function readProcStatus(pid: number): ProcStatus | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const f = kbFields(text);
  return { vmRSS: f.get("VmRSS"), vmHWM: f.get("VmHWM"), rssAnon: f.get("RssAnon"), rssFile: f.get("RssFile"), rssShmem: f.get("RssShmem") };
}

/** Figures from /proc/<pid>/smaps_rollup, in KiB. */
export interface SmapsRollup {
  rss: number;
  pss: number;
  /** Private (clean + dirty): what the process alone costs. */
  private: number;
  shared: number;
}

/** Reads /proc/<pid>/smaps_rollup; undefined if the process is gone. */
export function readSmapsRollup(pid: number): SmapsRollup | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  } catch {
    return undefined;
  }
  const f = kbFields(text);
  const g = (k: string): number => f.get(k) ?? 0;
  return {
    rss: g("Rss"),
    pss: g("Pss"),
    private: g("Private_Clean") + g("Private_Dirty"),
    shared: g("Shared_Clean") + g("Shared_Dirty"),
  };
}

/** Direct children of a process, from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ")) {
        if (c.trim() !== "") out.push(Number(c));
      }
    } catch {
      // thread or process gone
    }
  }
  return out;
}

/** The process and all its descendants, parents first. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift();
    if (p === undefined) break;
    out.push(p);
    queue.push(...childPids(p));
  }
  return out;
}

/**
 * Summed PSS/RSS/private (KiB) of a process and its descendants. (containerd's shims
 * are not its descendants: they daemonize; find them with pidsMentioning in containerd.ts.)
 */
export function treeMemory(pid: number): SmapsRollup & { processes: number } {
  const total = { rss: 0, pss: 0, private: 0, shared: 0, processes: 0 };
  for (const p of processTree(pid)) {
    const m = readSmapsRollup(p);
    if (m === undefined) continue;
    total.rss += m.rss;
    total.pss += m.pss;
    total.private += m.private;
    total.shared += m.shared;
    total.processes++;
  }
  return total;
}

export function kibToMiB(kib: number | undefined): number | undefined {
  return kib === undefined ? undefined : kib / 1024;
}
