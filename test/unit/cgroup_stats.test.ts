// cgroup v1 and v2 readings from fixture files, the parsers under them, and the
// cAdvisor metrics built from a reading.
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ContainerRecord } from "../../src/container/container_store.ts";
import { ContainerState } from "../../src/protocol/types.ts";
import {
  cgroupRelativePath, expandSlice, limitValue, parentRelativePath, parseCgroupV1Mounts, parseKeyedFile, parseNetDev, parsePsi, parseSingleValue,
} from "../../src/stats/cgroup_files.ts";
import { readCgroupSample } from "../../src/stats/cgroup_sample.ts";
import { podNetworkFrom } from "../../src/stats/pod_network.ts";
import { StatsCollector, sumSamples, type ContainerSample, type PodSample } from "../../src/stats/stats_collector.ts";
import { containerMetricPoints, METRIC_DESCRIPTORS, podMetricPoints } from "../../src/stats/cadvisor_metrics.ts";
import { tempDir } from "../helpers/tmp.ts";

const FIX = join(import.meta.dir, "../fixtures/cgroup");
const v1 = { version: 1 as const, cpu: join(FIX, "v1/cpu"), cpuacct: join(FIX, "v1/cpuacct"), memory: join(FIX, "v1/memory"), pids: join(FIX, "v1/pids") };
const v2 = { version: 2 as const, dir: join(FIX, "v2") };

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:  123456     100    1    2    0     0          0         0    65432      50    3    4    0     0       0          0
`;

describe("cgroup file parsers", () => {
  test("keyed files, single values, limits", () => {
    expect(parseKeyedFile("a 1\nb 22\nbad\nc x\n")).toEqual(new Map([["a", 1n], ["b", 22n]]));
    expect(parseSingleValue("max\n")).toBe("max");
    expect(parseSingleValue("42\n")).toBe(42n);
    expect(parseSingleValue("")).toBeUndefined();
    expect(limitValue(parseSingleValue("9223372036854771712"))).toBeUndefined(); // v1 "unlimited"
    expect(limitValue("max")).toBeUndefined();
    expect(limitValue(1024n)).toBe(1024n);
  });

  test("PSI lines", () => {
    const p = parsePsi("some avg10=1.50 avg60=0.75 avg300=0.10 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    expect(p.some).toEqual({ avg10: 1.5, avg60: 0.75, avg300: 0.1, total: 123456n });
    expect(p.full?.total).toBe(0n);
  });

  test("v1 controller mounts from mountinfo, separate or shared cpu,cpuacct", () => {
    const separate = [
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
      "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
    ].join("\n");
    const m = parseCgroupV1Mounts(separate);
    expect(m.get("cpu")).toBe("/sys/fs/cgroup/cpu");
    expect(m.get("cpuacct")).toBe("/sys/fs/cgroup/cpuacct");
    expect(m.has("name=systemd")).toBe(false);
    const shared = parseCgroupV1Mounts("25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n");
    expect(shared.get("cpu")).toBe("/sys/fs/cgroup/cpu,cpuacct");
    expect(shared.get("cpuacct")).toBe("/sys/fs/cgroup/cpu,cpuacct");
  });

  test("cgroup paths as runc resolves them (cgroupfs and systemd)", () => {
    expect(cgroupRelativePath("/crib/crib-abc")).toBe("/crib/crib-abc");
    expect(cgroupRelativePath("/kubepods/burstable/pod1/crib-abc")).toBe("/kubepods/burstable/pod1/crib-abc");
    expect(cgroupRelativePath("system.slice:crib:abc")).toBe("/system.slice/crib-abc.scope");
    expect(cgroupRelativePath("kubepods-burstable-pod1.slice:crib:abc")).toBe("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crib-abc.scope");
    expect(expandSlice("-.slice")).toBe("/");
    expect(expandSlice("a-b.slice")).toBe("/a.slice/a-b.slice");
    expect(parentRelativePath("kubepods-pod2.slice")).toBe("/kubepods.slice/kubepods-pod2.slice");
    expect(parentRelativePath("/kubepods/pod2")).toBe("/kubepods/pod2");
  });

  test("/proc/net/dev: every interface; the pod's network leaves lo out and picks eth0", () => {
    const all = parseNetDev(NET_DEV);
    expect(all.map((i) => i.name)).toEqual(["lo", "eth0"]);
    expect(all[1]).toEqual({ name: "eth0", rxBytes: 123456n, rxPackets: 100n, rxErrors: 1n, rxDropped: 2n, txBytes: 65432n, txPackets: 50n, txErrors: 3n, txDropped: 4n });
    const pod = podNetworkFrom(NET_DEV);
    expect(pod.interfaces.map((i) => i.name)).toEqual(["eth0"]);
    expect(pod.defaultInterface?.name).toBe("eth0");
    expect(podNetworkFrom(NET_DEV.split("\n").slice(0, 3).join("\n")).defaultInterface).toBeUndefined();
  });
});

describe("cgroup readings", () => {
  test("v1 fixture: cpuacct, memory (working set = usage - total_inactive_file), pids", async () => {
    const s = await readCgroupSample(v1);
    expect(s.cpu).toEqual({ usageNs: 7_250_000_000n, userNs: 5_000_000_000n, systemNs: 2_250_000_000n, periods: 40n, throttledPeriods: 3n, throttledNs: 120_000_000n });
    expect(s.memory?.usage).toBe(52_428_800n);
    expect(s.memory?.workingSet).toBe(52_428_800n - 10_485_760n);
    expect(s.memory?.rss).toBe(31_457_280n);
    expect(s.memory?.cache).toBe(20_971_520n);
    expect(s.memory?.mappedFile).toBe(1_048_576n);
    expect(s.memory?.pgfault).toBe(15_000n);
    expect(s.memory?.pgmajfault).toBe(12n);
    expect(s.memory?.limit).toBe(134_217_728n);
    expect(s.memory?.maxUsage).toBe(60_000_000n);
    expect(s.memory?.swapUsage).toBe(0n); // memsw - usage
    expect(s.memory?.swapLimit).toBeUndefined(); // memsw unlimited
    expect(s.memory?.oomKills).toBe(1n);
    expect(s.memory?.failcnt).toBe(2n);
    expect(s.pids).toEqual({ current: 3n, max: undefined });
    expect(s.processes).toBe(2);
    expect(s.io).toBeUndefined(); // no PSI on v1
  });

  test("v2 fixture: cpu.stat in µs, memory.stat anon/file, limits, PSI", async () => {
    const s = await readCgroupSample(v2);
    expect(s.cpu?.usageNs).toBe(2_500_000_000n);
    expect(s.cpu?.userNs).toBe(2_000_000_000n);
    expect(s.cpu?.systemNs).toBe(500_000_000n);
    expect(s.cpu?.throttledNs).toBe(1_500_000n);
    expect(s.cpu?.psi?.some?.total).toBe(123456n);
    expect(s.memory?.usage).toBe(104_857_600n);
    expect(s.memory?.workingSet).toBe(104_857_600n - 20_971_520n);
    expect(s.memory?.rss).toBe(62_914_560n);
    expect(s.memory?.cache).toBe(41_943_040n);
    expect(s.memory?.mappedFile).toBe(2_097_152n);
    expect(s.memory?.pgfault).toBe(54_321n);
    expect(s.memory?.pgmajfault).toBe(9n);
    expect(s.memory?.limit).toBe(268_435_456n);
    expect(s.memory?.maxUsage).toBe(120_000_000n);
    expect(s.memory?.swapUsage).toBe(4096n);
    expect(s.memory?.swapLimit).toBeUndefined();
    expect(s.memory?.oomKills).toBe(1n);
    expect(s.memory?.psi?.full?.total).toBe(40n);
    expect(s.pids).toEqual({ current: 5n, max: 1024n });
    expect(s.processes).toBe(2);
    expect(s.io?.psi?.some?.total).toBe(7n);
  });

  test("a cgroup that does not exist reads as empty", async () => {
    expect(await readCgroupSample({ version: 2, dir: join(FIX, "nope") })).toEqual({});
    expect(await readCgroupSample({ version: 1, memory: join(FIX, "nope") })).toEqual({});
  });

  test("a pod without its own cgroup adds its containers up", async () => {
    const a = await readCgroupSample(v1);
    const b = await readCgroupSample(v2);
    const sum = sumSamples([a, b]);
    expect(sum.cpu?.usageNs).toBe(7_250_000_000n + 2_500_000_000n);
    expect(sum.memory?.workingSet).toBe(a.memory!.workingSet + b.memory!.workingSet);
    expect(sum.memory?.limit).toBeUndefined();
    expect(sum.pids?.current).toBe(8n);
    expect(sum.processes).toBe(4);
    expect(sumSamples([])).toEqual({});
  });
});

describe("cAdvisor metrics from a reading", () => {
  const ident = { container: "app", id: "c1", image: "busybox:1", name: "k8s_app_p_ns_uid_0", namespace: "ns", pod: "p" };

  test("every point has a descriptor and as many label values as it has keys", async () => {
    const cs: ContainerSample = {
      id: "c1", timestampNs: 1_700_000_000_000_000_000n, cgroup: await readCgroupSample(v2), nanoCores: 5n,
      writable: { bytes: 8192n, inodes: 3n, truncated: false, timestampNs: 1n, mountpoint: "/var/lib/crib" },
    };
    const points = containerMetricPoints(ident, cs, { memoryLimit: 268_435_456n, cpuShares: 2n, cpuQuota: 0n, cpuPeriod: 100000n });
    const pod: PodSample = { id: "p1", timestampNs: 1n, cgroup: {}, containers: [cs], network: { ...podNetworkFrom(NET_DEV), timestampNs: 2n } };
    const all = [...points, ...podMetricPoints({ ...ident, container: "", id: "p1" }, pod)];
    const byName = new Map(METRIC_DESCRIPTORS.map((d) => [d.name, d]));
    for (const p of all) {
      const d = byName.get(p.name);
      expect(d).toBeDefined();
      expect(p.labelValues).toHaveLength(d!.labelKeys.length);
      expect(p.kind).toBe(d!.kind);
    }
    const value = (name: string) => all.find((p) => p.name === name)?.value;
    expect(value("container_cpu_usage_seconds_total")).toBe(2n); // 2.5 s as whole seconds
    expect(all.find((p) => p.name === "container_cpu_usage_seconds_total")?.labelValues.at(-1)).toBe("total");
    expect(value("container_memory_working_set_bytes")).toBe(104_857_600n - 20_971_520n);
    expect(value("container_fs_usage_bytes")).toBe(8192n);
    expect(value("container_processes")).toBe(2n);
    expect(value("container_threads")).toBe(5n);
    expect(value("container_network_receive_bytes_total")).toBe(123456n);
    expect(all.find((p) => p.name === "container_network_transmit_bytes_total")?.labelValues.at(-1)).toBe("eth0");
    expect(all.some((p) => p.labelValues.includes("lo"))).toBe(false);
  });

  test("descriptor names are unique and follow cAdvisor's", () => {
    const names = METRIC_DESCRIPTORS.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_rss", "container_memory_usage_bytes",
      "container_network_receive_bytes_total", "container_network_transmit_bytes_total", "container_fs_usage_bytes", "container_processes"]) {
      expect(names).toContain(n);
    }
  });
});

describe("stats collector", () => {
  test("the cgroup comes from the bundle's config.json; CPU rates from the cumulative counter", async () => {
    const dir = tempDir("crib-stats-");
    const cg = join(dir, "cgroup");
    mkdirSync(cg);
    for (const f of readdirSync(join(FIX, "v2"))) copyFileSync(join(FIX, "v2", f), join(cg, f));
    mkdirSync(join(dir, "bundle"));
    writeFileSync(join(dir, "bundle", "config.json"), JSON.stringify({ linux: { cgroupsPath: "kubepods.slice:crib:abc" } }));
    const asked: string[] = [];
    const layout = { version: 2 as const, dirs: (rel: string) => (asked.push(rel), { version: 2 as const, dir: cg }) };
    const collector = new StatsCollector(layout, { upper: () => join(dir, "upper"), bundle: () => join(dir, "bundle") }, "/var/lib/crib");
    const rec = { id: "abc", state: ContainerState.CONTAINER_RUNNING } as ContainerRecord;

    const first = await collector.container(rec);
    expect(asked).toEqual(["/kubepods.slice/crib-abc.scope"]);
    expect(first.cgroup?.cpu?.usageNs).toBe(2_500_000_000n);
    expect(first.nanoCores).toBeUndefined(); // nothing to compare with yet
    expect(first.writable).toMatchObject({ bytes: 0n, inodes: 0n, mountpoint: "/var/lib/crib" });

    writeFileSync(join(cg, "cpu.stat"), "usage_usec 3500000\n");
    const second = await collector.container(rec);
    expect(second.nanoCores).toBeGreaterThan(0n);

    const exited = await collector.container({ ...rec, state: ContainerState.CONTAINER_EXITED });
    expect(exited.cgroup).toBeUndefined();
    collector.prune([], []);
  });
});
