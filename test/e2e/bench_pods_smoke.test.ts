// The pod benchmark end to end on both runtimes with 2 pods: it must produce its
// figures and leave nothing behind. No timing is checked.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CONTAINERD_BIN, mountsUnder } from "../bench/containerd.ts";
import { measurePods, perPodMemory, type PodsReport, type RuntimeResult } from "../bench/pods.ts";
import type { BenchContext } from "../bench/run.ts";
import { formatTable } from "../bench/stats.ts";
import { requireBinary } from "../helpers/daemon.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";

const PODS = 2;
let reg: StartedRegistry;
let report: PodsReport;

/** Running = present in /proc and not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Memory cgroups (one and two levels down) whose name contains `id`. */
function cgroupsNaming(id: string): string[] {
  const root = "/sys/fs/cgroup/memory";
  const found: string[] = [];
  const dirs = (p: string): string[] => {
    try {
      return readdirSync(p, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
  };
  for (const a of dirs(root)) {
    if (a.includes(id)) found.push(join(root, a));
    for (const b of dirs(join(root, a))) if (b.includes(id)) found.push(join(root, a, b));
  }
  return found;
}

function result(name: RuntimeResult["runtime"]): RuntimeResult {
  const r = report.results.find((x) => x.runtime === name);
  if (r === undefined) throw new Error(`no result for ${name}`);
  return r;
}

beforeAll(async () => {
  requireBinary();
  if (!existsSync(CONTAINERD_BIN)) throw new Error(`${CONTAINERD_BIN} is missing: apt-get install containerd`);
  reg = await startRegistry();
  const ctx: BenchContext = {
    runs: PODS,
    cribBuilt: true,
    registry: async () => reg,
    log: () => {},
    track: () => () => {},
  };
  report = await measurePods(ctx, { runs: PODS, memoryPods: PODS, settleMs: 100 });
}, 300_000);

afterAll(async () => {
  await reg?.stop();
});

describe("pods benchmark smoke run", () => {
  test("both runtimes give every figure", () => {
    for (const name of ["containerd", "crib"] as const) {
      const r = result(name);
      expect(r.note).toBeUndefined();
      expect(r.starts).toHaveLength(PODS);
      expect(r.teardowns).toHaveLength(PODS);
      expect(r.firstStartMs).toBeGreaterThan(0);
      expect(r.idle?.daemonRss).toBeGreaterThan(0);
      expect(r.withPods?.daemonPss).toBeGreaterThan(0);
      // A cold round and a steady round of PODS pods each, then the timed runs.
      expect(r.containers).toHaveLength(3 * PODS);
      expect(r.warmZero?.daemonPss).toBeGreaterThan(0);
      expect(r.warmWithPods?.daemonPss).toBeGreaterThan(0);
      expect(perPodMemory(r, PODS)).toBeDefined();
    }
    const ctd = result("containerd").withPods;
    expect(ctd?.shims).toBe(PODS);
    expect(ctd?.pauses).toBe(PODS);
    expect(ctd?.shimPss).toBeGreaterThan(0);
    expect(result("crib").withPods?.monitorPss).toBeGreaterThan(0);
    // The monitor keeps running between the rounds: its private memory is the node-wide cost.
    expect(result("crib").warmZero?.monitorUss).toBeGreaterThan(0);
  });

  test("the tables render with a row per runtime", () => {
    expect(report.tables).toHaveLength(4);
    for (const t of report.tables) {
      expect(t.rows.map((r) => r[0])).toEqual(["containerd", "crib"]);
      const text = formatTable(t);
      expect(text).toContain("containerd");
      expect(text).not.toContain("NaN");
    }
  });

  test("nothing is left: processes, temp dirs, mounts, cgroups", () => {
    for (const r of report.results) {
      // daemon, shims and pauses (containerd); daemon and monitor (crib)
      expect(r.pids.length).toBeGreaterThanOrEqual(r.runtime === "crib" ? 2 : 1 + 2 * PODS);
      expect(r.pids.filter(running)).toEqual([]);
      for (const d of r.dirs) {
        expect(mountsUnder(d)).toEqual([]);
        expect(existsSync(d)).toBe(false);
      }
      const mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
      for (const id of r.containers) {
        expect(mountinfo).not.toContain(id);
        expect(cgroupsNaming(id)).toEqual([]);
      }
    }
  });
});
