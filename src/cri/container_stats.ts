// ContainerStats, ListContainerStats, StreamContainerStats.
import type { ContainerRecord } from "../container/container_store.ts";
import type { CriContext } from "./context.ts";
import type { Psi } from "../stats/cgroup_files.ts";
import type { ContainerSample } from "../stats/stats_collector.ts";
import type { CgroupSample } from "../stats/cgroup_sample.ts";
import { batches, labelsMatch } from "./filters.ts";
import { serverStream, unary } from "./rpc.ts";
import type {
  ContainerStats, ContainerStatsFilter, ContainerStatsRequest, ContainerStatsResponse, CpuUsage, ListContainerStatsRequest,
  ListContainerStatsResponse, MemoryUsage, Out, PsiStats, StreamContainerStatsRequest, StreamContainerStatsResponse, SwapUsage,
} from "../protocol/types.ts";

const u64 = (v: bigint | number | undefined) => (v === undefined ? null : { value: BigInt(v) });

export function toCriPsi(p: Psi | undefined): Out<PsiStats> | null {
  if (!p) return null;
  const line = (l: Psi["some"]) => (l ? { Total: l.total, Avg10: l.avg10, Avg60: l.avg60, Avg300: l.avg300 } : null);
  return { Full: line(p.full), Some: line(p.some) };
}

export function toCriCpu(s: CgroupSample, nanoCores: bigint | undefined, timestamp: bigint): Out<CpuUsage> | null {
  if (!s.cpu) return null;
  return { timestamp, usage_core_nano_seconds: u64(s.cpu.usageNs), usage_nano_cores: u64(nanoCores), psi: toCriPsi(s.cpu.psi) };
}

export function toCriMemory(s: CgroupSample, timestamp: bigint): Out<MemoryUsage> | null {
  const m = s.memory;
  if (!m) return null;
  return {
    timestamp,
    working_set_bytes: u64(m.workingSet),
    // What is left before the limit, as the kubelet computes it; none without a limit.
    available_bytes: m.limit !== undefined ? u64(m.limit > m.workingSet ? m.limit - m.workingSet : 0n) : null,
    usage_bytes: u64(m.usage),
    rss_bytes: u64(m.rss),
    page_faults: u64(m.pgfault),
    major_page_faults: u64(m.pgmajfault),
    psi: toCriPsi(m.psi),
  };
}

function toCriSwap(s: CgroupSample, timestamp: bigint): Out<SwapUsage> | null {
  const m = s.memory;
  if (m?.swapUsage === undefined) return null;
  return {
    timestamp,
    swap_usage_bytes: u64(m.swapUsage),
    swap_available_bytes: m.swapLimit !== undefined ? u64(m.swapLimit > m.swapUsage ? m.swapLimit - m.swapUsage : 0n) : null,
  };
}

export function toCriContainerStats(c: ContainerRecord, s: ContainerSample): Out<ContainerStats> {
  const t = s.timestampNs;
  const cg = s.cgroup;
  return {
    attributes: { id: c.id, metadata: c.config.metadata, labels: c.config.labels, annotations: c.config.annotations },
    cpu: cg ? toCriCpu(cg, s.nanoCores, t) : null,
    memory: cg ? toCriMemory(cg, t) : null,
    swap: cg ? toCriSwap(cg, t) : null,
    io: cg?.io?.psi ? { timestamp: t, psi: toCriPsi(cg.io.psi) } : null,
    writable_layer: {
      timestamp: s.writable.timestampNs,
      fs_id: { mountpoint: s.writable.mountpoint },
      used_bytes: u64(s.writable.bytes),
      inodes_used: u64(s.writable.inodes),
    },
  };
}

export function matchingContainers(d: CriContext, f: ContainerStatsFilter | null): ContainerRecord[] {
  const all = d.containers.list();
  d.stats.prune(all.map((c) => c.id), d.pods.list().map((p) => p.id));
  return all.filter(
    (c) => !f || ((!f.id || c.id.startsWith(f.id)) && (!f.pod_sandbox_id || c.podId.startsWith(f.pod_sandbox_id)) && labelsMatch(c.config.labels, f.label_selector)),
  );
}

async function statsOf(d: CriContext, list: ContainerRecord[]): Promise<Out<ContainerStats>[]> {
  return Promise.all(list.map(async (c) => toCriContainerStats(c, await d.stats.container(c))));
}

export const containerStats = unary<ContainerStatsRequest, ContainerStatsResponse>(async (d, req) => {
  const c = d.containers.get(req.container_id);
  return { stats: toCriContainerStats(c, await d.stats.container(c)) };
});

export const containerStatsList = unary<ListContainerStatsRequest, ListContainerStatsResponse>(async (d, req) => ({
  stats: await statsOf(d, matchingContainers(d, req.filter)),
}));

export const containerStatsStream = serverStream<StreamContainerStatsRequest, StreamContainerStatsResponse>(async (d, req, send, ctx) => {
  for (const batch of batches(matchingContainers(d, req.filter))) {
    if (ctx.signal.aborted) return;
    send({ container_stats: await statsOf(d, batch) });
  }
});
