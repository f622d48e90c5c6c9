// The cAdvisor metrics the kubelet serves on /metrics/cadvisor when it takes
// them from the runtime (ListMetricDescriptors + ListPodSandboxMetrics), built
// from crib's samples. Names, meaning and labels follow cAdvisor's, so existing
// dashboards and alerts keep working. The CRI carries each value as a uint64:
// "_seconds" counters are whole seconds, as CRI-O sends them.

import type { ContainerSample, PodSample } from "./stats_collector.ts";

export type MetricKind = "counter" | "gauge";

/** Labels of every container metric: the ones cAdvisor puts on container_* series. */
export const BASE_LABELS = ["container", "id", "image", "name", "namespace", "pod"] as const;

export interface MetricDescriptor { name: string; help: string; kind: MetricKind; labelKeys: string[] }
export interface MetricPoint { name: string; kind: MetricKind; labelValues: string[]; value: bigint; timestampNs: bigint }

/** Values of BASE_LABELS for one container (or, with container "", for the pod itself). */
export interface MetricIdentity { container: string; id: string; image: string; name: string; namespace: string; pod: string }

type Group = "base" | "cpu" | "interface";
const KEYS: Record<Group, string[]> = { base: [...BASE_LABELS], cpu: [...BASE_LABELS, "cpu"], interface: [...BASE_LABELS, "interface"] };

const d = (name: string, kind: MetricKind, help: string, group: Group = "base"): MetricDescriptor => ({ name, kind, help, labelKeys: KEYS[group] });

const CONTAINER = [
  d("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.", "cpu"),
  d("container_cpu_user_seconds_total", "counter", "Cumulative user cpu time consumed in seconds."),
  d("container_cpu_system_seconds_total", "counter", "Cumulative system cpu time consumed in seconds."),
  d("container_cpu_cfs_periods_total", "counter", "Number of elapsed enforcement period intervals."),
  d("container_cpu_cfs_throttled_periods_total", "counter", "Number of throttled period intervals."),
  d("container_cpu_cfs_throttled_seconds_total", "counter", "Total time duration the container has been throttled."),
  d("container_memory_usage_bytes", "gauge", "Current memory usage in bytes, including all memory regardless of when it was accessed."),
  d("container_memory_working_set_bytes", "gauge", "Current working set in bytes."),
  d("container_memory_rss", "gauge", "Size of RSS in bytes."),
  d("container_memory_cache", "gauge", "Number of bytes of page cache memory."),
  d("container_memory_mapped_file", "gauge", "Size of memory mapped files in bytes."),
  d("container_memory_swap", "gauge", "Container swap usage in bytes."),
  d("container_memory_max_usage_bytes", "gauge", "Maximum memory usage recorded in bytes."),
  d("container_memory_failcnt", "counter", "Number of memory usage hits limits."),
  d("container_oom_events_total", "counter", "Count of out of memory events observed for the container."),
  d("container_fs_usage_bytes", "gauge", "Number of bytes that are consumed by the container on this filesystem."),
  d("container_fs_inodes_used", "gauge", "Number of inodes the container's writable layer uses."),
  d("container_processes", "gauge", "Number of processes running inside the container."),
  d("container_threads", "gauge", "Number of threads running inside the container."),
  d("container_threads_max", "gauge", "Maximum number of threads allowed inside the container, infinity if value is zero."),
  d("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container."),
  d("container_spec_cpu_shares", "gauge", "CPU share of the container."),
  d("container_spec_cpu_quota", "gauge", "CPU quota of the container."),
  d("container_spec_cpu_period", "gauge", "CPU period of the container."),
  d("container_last_seen", "gauge", "Last time a container was seen by the exporter."),
];

const POD = [
  d("container_network_receive_bytes_total", "counter", "Cumulative count of bytes received.", "interface"),
  d("container_network_receive_packets_total", "counter", "Cumulative count of packets received.", "interface"),
  d("container_network_receive_packets_dropped_total", "counter", "Cumulative count of packets dropped while receiving.", "interface"),
  d("container_network_receive_errors_total", "counter", "Cumulative count of errors encountered while receiving.", "interface"),
  d("container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted.", "interface"),
  d("container_network_transmit_packets_total", "counter", "Cumulative count of packets transmitted.", "interface"),
  d("container_network_transmit_packets_dropped_total", "counter", "Cumulative count of packets dropped while transmitting.", "interface"),
  d("container_network_transmit_errors_total", "counter", "Cumulative count of errors encountered while transmitting.", "interface"),
];

/** Every metric ListPodSandboxMetrics may send. */
export const METRIC_DESCRIPTORS: readonly MetricDescriptor[] = [...CONTAINER, ...POD];
const BY_NAME = new Map(METRIC_DESCRIPTORS.map((m) => [m.name, m]));

const SECOND = 1_000_000_000n;

/** What the container asked for (its CRI resources), for the container_spec_* gauges. */
export interface ContainerSpecLimits { memoryLimit?: bigint; cpuShares?: bigint; cpuQuota?: bigint; cpuPeriod?: bigint }

class PointList {
  readonly points: MetricPoint[] = [];
  constructor(private readonly base: string[], private readonly timestampNs: bigint) {}

  add(name: string, value: bigint | number | undefined, extra: string[] = []): void {
    if (value === undefined) return;
    const desc = BY_NAME.get(name);
    if (!desc) throw new Error(`metric ${name} has no descriptor`);
    const v = BigInt(value);
    if (v < 0n) return; // uint64 on the wire
    this.points.push({ name, kind: desc.kind, labelValues: [...this.base, ...extra], value: v, timestampNs: this.timestampNs });
  }
}

function identityValues(id: MetricIdentity): string[] {
  return [id.container, id.id, id.image, id.name, id.namespace, id.pod];
}

export function containerMetricPoints(id: MetricIdentity, s: ContainerSample, spec: ContainerSpecLimits = {}): MetricPoint[] {
  const p = new PointList(identityValues(id), s.timestampNs);
  const cg = s.cgroup;
  const secs = (ns: bigint | undefined) => (ns === undefined ? undefined : ns / SECOND);
  if (cg?.cpu) {
    p.add("container_cpu_usage_seconds_total", secs(cg.cpu.usageNs), ["total"]);
    p.add("container_cpu_user_seconds_total", secs(cg.cpu.userNs));
    p.add("container_cpu_system_seconds_total", secs(cg.cpu.systemNs));
    p.add("container_cpu_cfs_periods_total", cg.cpu.periods);
    p.add("container_cpu_cfs_throttled_periods_total", cg.cpu.throttledPeriods);
    p.add("container_cpu_cfs_throttled_seconds_total", secs(cg.cpu.throttledNs));
  }
  if (cg?.memory) {
    const m = cg.memory;
    p.add("container_memory_usage_bytes", m.usage);
    p.add("container_memory_working_set_bytes", m.workingSet);
    p.add("container_memory_rss", m.rss);
    p.add("container_memory_cache", m.cache);
    p.add("container_memory_mapped_file", m.mappedFile);
    p.add("container_memory_swap", m.swapUsage);
    p.add("container_memory_max_usage_bytes", m.maxUsage);
    p.add("container_memory_failcnt", m.failcnt);
    p.add("container_oom_events_total", m.oomKills);
  }
  if (cg?.processes !== undefined) p.add("container_processes", cg.processes);
  if (cg?.pids) {
    p.add("container_threads", cg.pids.current);
    p.add("container_threads_max", cg.pids.max ?? 0n);
  }
  p.add("container_fs_usage_bytes", s.writable.bytes);
  p.add("container_fs_inodes_used", s.writable.inodes);
  p.add("container_spec_memory_limit_bytes", spec.memoryLimit ?? 0n);
  p.add("container_spec_cpu_shares", spec.cpuShares);
  p.add("container_spec_cpu_quota", spec.cpuQuota);
  p.add("container_spec_cpu_period", spec.cpuPeriod);
  p.add("container_last_seen", s.timestampNs / SECOND);
  return p.points;
}

/** The pod's own metrics: its network, per interface (loopback left out). */
export function podMetricPoints(id: MetricIdentity, s: PodSample): MetricPoint[] {
  const p = new PointList(identityValues(id), s.network?.timestampNs ?? s.timestampNs);
  for (const i of s.network?.interfaces ?? []) {
    p.add("container_network_receive_bytes_total", i.rxBytes, [i.name]);
    p.add("container_network_receive_packets_total", i.rxPackets, [i.name]);
    p.add("container_network_receive_packets_dropped_total", i.rxDropped, [i.name]);
    p.add("container_network_receive_errors_total", i.rxErrors, [i.name]);
    p.add("container_network_transmit_bytes_total", i.txBytes, [i.name]);
    p.add("container_network_transmit_packets_total", i.txPackets, [i.name]);
    p.add("container_network_transmit_packets_dropped_total", i.txDropped, [i.name]);
    p.add("container_network_transmit_errors_total", i.txErrors, [i.name]);
  }
  return p.points;
}
