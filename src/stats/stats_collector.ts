// Resource usage of containers and pods: cgroup counters (v1 or v2), the
// writable layer, the pod's network. Keeps the previous CPU reading of each
// container and pod to turn the cumulative counter into a rate (nano cores).
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ContainerRecord } from "../container/container_store.ts";
import { ContainerState } from "../protocol/types.ts";
import { log } from "../log/logger.ts";
import type { PodRecord } from "../pod/pod_store.ts";
import { nowNs } from "../state/boot.ts";
import { cgroupRelativePath, parentRelativePath } from "./cgroup_files.ts";
import { detectCgroupLayout, type CgroupLayout } from "./cgroup_layout.ts";
import { readCgroupSample, type CgroupSample } from "./cgroup_sample.ts";
import { podNetworkFrom, readNetDevIn, type PodNetworkSample } from "./pod_network.ts";
import { DiskUsageCache, type DiskUsage } from "./writable_layer.ts";

const logger = log.with({ component: "stats" });

/** The shortest span a CPU rate is taken over, once a container has lived that long. */
const RATE_WINDOW_NS = 1_000_000_000n;

export interface ContainerSample {
  id: string;
  timestampNs: bigint;
  /** Only for a running container. */
  cgroup?: CgroupSample;
  /** CPU rate since the previous reading (absent on the first one). */
  nanoCores?: bigint;
  writable: DiskUsage & { mountpoint: string };
}

export interface PodSample {
  id: string;
  timestampNs: bigint;
  /** The pod's own cgroup (cgroup_parent) when it has one, else the sum of its containers. */
  cgroup: CgroupSample;
  nanoCores?: bigint;
  /** Absent for host-network pods and pods whose namespace is gone. */
  network?: PodNetworkSample & { timestampNs: bigint };
  containers: ContainerSample[];
}

/** Where a container's files are. */
export interface ContainerPaths {
  /** The overlay upper dir (the writable layer). */
  upper(id: string): string;
  /** The OCI bundle dir (config.json holds linux.cgroupsPath). */
  bundle(id: string): string;
}

export class StatsCollector {
  private readonly cpu = new Map<string, { usageNs: bigint; mono: bigint }[]>();
  private readonly cgroupPaths = new Map<string, string | null>();
  private readonly disk = new DiskUsageCache();

  constructor(
    private readonly layout: CgroupLayout,
    private readonly paths: ContainerPaths,
    /** The filesystem writable layers live on, as ImageFsInfo names it. */
    private readonly fsMountpoint: string,
  ) {}

  get cgroupVersion(): 1 | 2 {
    return this.layout.version;
  }

  async container(c: ContainerRecord): Promise<ContainerSample> {
    const timestampNs = nowNs();
    const mono = process.hrtime.bigint();
    const running = c.state === ContainerState.CONTAINER_RUNNING;
    const [cgroup, writable] = await Promise.all([
      running ? this.containerCgroup(c.id) : Promise.resolve(undefined),
      this.disk.get(c.id, this.paths.upper(c.id)),
    ]);
    const nanoCores = cgroup?.cpu ? this.rate(c.id, cgroup.cpu.usageNs, mono) : undefined;
    return { id: c.id, timestampNs, cgroup, nanoCores, writable: { ...writable, mountpoint: this.fsMountpoint } };
  }

  async pod(p: PodRecord, containers: ContainerRecord[]): Promise<PodSample> {
    const timestampNs = nowNs();
    const mono = process.hrtime.bigint();
    const parent = p.config.linux?.cgroup_parent ?? "";
    const [samples, own] = await Promise.all([
      Promise.all(containers.map((c) => this.container(c))),
      parent ? readCgroupSample(this.layout.dirs(parentRelativePath(parent))) : Promise.resolve(undefined),
    ]);
    const cgroup = own && (own.cpu || own.memory) ? own : sumSamples(samples.flatMap((s) => (s.cgroup ? [s.cgroup] : [])));
    const nanoCores = cgroup.cpu ? this.rate(`pod:${p.id}`, cgroup.cpu.usageNs, mono) : undefined;
    return { id: p.id, timestampNs, cgroup, nanoCores, network: this.network(p), containers: samples };
  }

  /** Forget what belongs to containers and pods that are gone. */
  prune(containerIds: Iterable<string>, podIds: Iterable<string>): void {
    const live = new Set(containerIds);
    for (const id of podIds) live.add(`pod:${id}`);
    for (const k of this.cpu.keys()) if (!live.has(k)) this.cpu.delete(k);
    for (const k of this.cgroupPaths.keys()) if (!live.has(k)) this.cgroupPaths.delete(k);
    this.disk.retain(live);
  }

  private network(p: PodRecord): PodSample["network"] {
    if (!p.namespaces.net) return undefined;
    try {
      return { ...podNetworkFrom(readNetDevIn(p.namespaces.net)), timestampNs: nowNs() };
    } catch (e) {
      logger.debug("cannot read the pod's network counters", { pod: p.id, error: e });
      return undefined;
    }
  }

  private async containerCgroup(id: string): Promise<CgroupSample | undefined> {
    const rel = await this.cgroupPathOf(id);
    return rel === null ? undefined : readCgroupSample(this.layout.dirs(rel));
  }

  /** The container's cgroup as runc was told (config.json), so both drivers resolve alike. */
  private async cgroupPathOf(id: string): Promise<string | null> {
    const known = this.cgroupPaths.get(id);
    if (known !== undefined) return known;
    let rel: string | null = null;
    try {
      const spec = JSON.parse(await readFile(join(this.paths.bundle(id), "config.json"), "utf8")) as { linux?: { cgroupsPath?: unknown } };
      const p = spec.linux?.cgroupsPath;
      if (typeof p === "string" && p !== "") rel = cgroupRelativePath(p);
    } catch (e) {
      logger.debug("cannot read the container's cgroup path from its bundle", { container: id, error: e });
      return null; // not cached: the bundle may appear (a container being created)
    }
    this.cgroupPaths.set(id, rel);
    return rel;
  }

  /**
   * CPU rate against an earlier reading at least RATE_WINDOW_NS old when there is
   * one: the kubelet calls ListPodSandboxStats and ListContainerStats back to back,
   * and a rate over the few ms between them would be noise. Readings are kept as
   * anchors at least that far apart (the last two).
   */
  private rate(key: string, usageNs: bigint, mono: bigint): bigint | undefined {
    let anchors = this.cpu.get(key);
    if (!anchors) this.cpu.set(key, (anchors = []));
    const base = anchors.findLast((a) => mono - a.mono >= RATE_WINDOW_NS) ?? anchors[0];
    const latest = anchors.at(-1);
    if (!latest || mono - latest.mono >= RATE_WINDOW_NS) {
      anchors.push({ usageNs, mono });
      if (anchors.length > 2) anchors.shift();
    }
    if (!base || mono <= base.mono || usageNs < base.usageNs) return undefined;
    return ((usageNs - base.usageNs) * 1_000_000_000n) / (mono - base.mono);
  }
}

/** A pod without a cgroup of its own: its containers' figures added up. */
export function sumSamples(samples: CgroupSample[]): CgroupSample {
  const out: CgroupSample = {};
  const add = (a: bigint | undefined, b: bigint | undefined) => (a === undefined && b === undefined ? undefined : (a ?? 0n) + (b ?? 0n));
  for (const s of samples) {
    if (s.cpu) {
      const c = out.cpu;
      out.cpu = c
        ? { usageNs: c.usageNs + s.cpu.usageNs, userNs: add(c.userNs, s.cpu.userNs), systemNs: add(c.systemNs, s.cpu.systemNs) }
        : { usageNs: s.cpu.usageNs, userNs: s.cpu.userNs, systemNs: s.cpu.systemNs };
    }
    if (s.memory) {
      const m = out.memory;
      const n = s.memory;
      out.memory = m
        ? {
            usage: m.usage + n.usage, workingSet: m.workingSet + n.workingSet, rss: m.rss + n.rss, cache: m.cache + n.cache,
            mappedFile: m.mappedFile + n.mappedFile, pgfault: m.pgfault + n.pgfault, pgmajfault: m.pgmajfault + n.pgmajfault,
            swapUsage: add(m.swapUsage, n.swapUsage),
          }
        : { usage: n.usage, workingSet: n.workingSet, rss: n.rss, cache: n.cache, mappedFile: n.mappedFile, pgfault: n.pgfault, pgmajfault: n.pgmajfault, swapUsage: n.swapUsage };
    }
    if (s.pids) out.pids = { current: (out.pids?.current ?? 0n) + s.pids.current };
    if (s.processes !== undefined) out.processes = (out.processes ?? 0) + s.processes;
  }
  return out;
}

/** The daemon's collector: this node's cgroup layout, crib's container paths. */
export function createStatsCollector(root: string, fsPaths: { paths(id: string): { upper: string; rootfs: string } }): StatsCollector {
  return new StatsCollector(
    detectCgroupLayout(),
    { upper: (id) => fsPaths.paths(id).upper, bundle: (id) => dirname(fsPaths.paths(id).rootfs) },
    root,
  );
}
