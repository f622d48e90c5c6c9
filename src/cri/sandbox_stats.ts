// PodSandboxStats, ListPodSandboxStats, StreamPodSandboxStats: the pod's own
// cgroup (or its containers added up), its network and its containers.
import type { CriContext } from "./context.ts";
import type { NetDevCounters } from "../stats/cgroup_files.ts";
import type { PodRecord } from "../pod/pod_store.ts";
import type { PodSample } from "../stats/stats_collector.ts";
import { toCriContainerStats, toCriCpu, toCriMemory } from "./container_stats.ts";
import { batches, labelsMatch } from "./filters.ts";
import { serverStream, unary } from "./rpc.ts";
import {
  PodSandboxState,
  type ListPodSandboxStatsRequest, type ListPodSandboxStatsResponse, type NetworkInterfaceUsage, type Out, type PodSandboxStats,
  type PodSandboxStatsFilter, type PodSandboxStatsRequest, type PodSandboxStatsResponse, type StreamPodSandboxStatsRequest,
  type StreamPodSandboxStatsResponse,
} from "../protocol/types.ts";

function toCriInterface(i: NetDevCounters): Out<NetworkInterfaceUsage> {
  return { name: i.name, rx_bytes: { value: i.rxBytes }, rx_errors: { value: i.rxErrors }, tx_bytes: { value: i.txBytes }, tx_errors: { value: i.txErrors } };
}

export async function podStatsOf(d: CriContext, p: PodRecord): Promise<{ sample: PodSample; stats: Out<PodSandboxStats> }> {
  const containers = d.containers.store.list(p.id);
  const s = await d.stats.pod(p, containers);
  const t = s.timestampNs;
  const byId = new Map(containers.map((c) => [c.id, c]));
  const stats: Out<PodSandboxStats> = {
    attributes: { id: p.id, metadata: p.config.metadata, labels: p.config.labels, annotations: p.config.annotations },
    linux: {
      cpu: toCriCpu(s.cgroup, s.nanoCores, t),
      memory: toCriMemory(s.cgroup, t),
      network: s.network
        ? {
            timestamp: s.network.timestampNs,
            default_interface: s.network.defaultInterface ? toCriInterface(s.network.defaultInterface) : null,
            interfaces: s.network.interfaces.map(toCriInterface),
          }
        : null,
      process: s.cgroup.pids ? { timestamp: t, process_count: { value: s.cgroup.pids.current } } : null,
      containers: s.containers.map((cs) => toCriContainerStats(byId.get(cs.id)!, cs)),
    },
  };
  return { sample: s, stats };
}

/** Ready pods that match (stats of stopped pods are of no use; containerd lists only ready ones too). */
export function matchingPods(d: CriContext, f: PodSandboxStatsFilter | null): PodRecord[] {
  const all = d.pods.list();
  d.stats.prune(d.containers.list().map((c) => c.id), all.map((p) => p.id));
  return all.filter(
    (p) => p.state === PodSandboxState.SANDBOX_READY && (!f || ((!f.id || p.id.startsWith(f.id)) && labelsMatch(p.config.labels, f.label_selector))),
  );
}

async function statsOf(d: CriContext, pods: PodRecord[]): Promise<Out<PodSandboxStats>[]> {
  return Promise.all(pods.map(async (p) => (await podStatsOf(d, p)).stats));
}

export const sandboxStats = unary<PodSandboxStatsRequest, PodSandboxStatsResponse>(async (d, req) => ({
  stats: (await podStatsOf(d, d.pods.get(req.pod_sandbox_id))).stats,
}));

export const sandboxStatsList = unary<ListPodSandboxStatsRequest, ListPodSandboxStatsResponse>(async (d, req) => ({
  stats: await statsOf(d, matchingPods(d, req.filter)),
}));

export const sandboxStatsStream = serverStream<StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse>(async (d, req, send, ctx) => {
  for (const batch of batches(matchingPods(d, req.filter))) {
    if (ctx.signal.aborted) return;
    send({ pod_sandbox_stats: await statsOf(d, batch) });
  }
});
