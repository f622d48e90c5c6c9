// ListMetricDescriptors, ListPodSandboxMetrics, StreamPodSandboxMetrics: the
// cAdvisor metrics of ready pods and their containers (src/stats/cadvisor_metrics.ts).
import type { ContainerRecord } from "../container/container_store.ts";
import type { CriContext } from "./context.ts";
import type { PodRecord } from "../pod/pod_store.ts";
import { containerMetricPoints, METRIC_DESCRIPTORS, podMetricPoints, type MetricIdentity, type MetricPoint } from "../stats/cadvisor_metrics.ts";
import { batches } from "./filters.ts";
import { serverStream, unary } from "./rpc.ts";
import { matchingPods } from "./sandbox_stats.ts";
import {
  MetricType,
  type ListMetricDescriptorsRequest, type ListMetricDescriptorsResponse, type ListPodSandboxMetricsRequest, type ListPodSandboxMetricsResponse,
  type Metric, type Out, type PodSandboxMetrics, type StreamPodSandboxMetricsRequest, type StreamPodSandboxMetricsResponse,
} from "../protocol/types.ts";

function toCriMetric(p: MetricPoint): Out<Metric> {
  return { name: p.name, timestamp: p.timestampNs, metric_type: p.kind === "counter" ? MetricType.COUNTER : MetricType.GAUGE, label_values: p.labelValues, value: { value: p.value } };
}

/** A dockershim-style name ("k8s_CONTAINER_POD_NAMESPACE_UID_ATTEMPT"), as cAdvisor's name label shows it. */
function podIdentity(p: PodRecord): MetricIdentity {
  const md = p.config.metadata;
  return { container: "", id: p.id, image: "", name: `k8s_POD_${md?.name ?? ""}_${md?.namespace ?? ""}_${md?.uid ?? ""}_${md?.attempt ?? 0}`, namespace: md?.namespace ?? "", pod: md?.name ?? "" };
}

function containerIdentity(p: PodRecord, c: ContainerRecord): MetricIdentity {
  const pod = podIdentity(p);
  const name = c.config.metadata?.name ?? "";
  const md = p.config.metadata;
  return { ...pod, container: name, id: c.id, image: c.imageRef, name: `k8s_${name}_${md?.name ?? ""}_${md?.namespace ?? ""}_${md?.uid ?? ""}_${c.config.metadata?.attempt ?? 0}` };
}

async function podMetrics(d: CriContext, p: PodRecord): Promise<Out<PodSandboxMetrics>> {
  const containers = d.containers.store.list(p.id);
  const s = await d.stats.pod(p, containers);
  const byId = new Map(containers.map((c) => [c.id, c]));
  return {
    pod_sandbox_id: p.id,
    metrics: podMetricPoints(podIdentity(p), s).map(toCriMetric),
    container_metrics: s.containers.map((cs) => {
      const c = byId.get(cs.id)!;
      const r = c.config.linux?.resources;
      const spec = r ? { memoryLimit: r.memory_limit_in_bytes, cpuShares: r.cpu_shares, cpuQuota: r.cpu_quota, cpuPeriod: r.cpu_period } : {};
      return { container_id: c.id, metrics: containerMetricPoints(containerIdentity(p, c), cs, spec).map(toCriMetric) };
    }),
  };
}

export const metricDescriptorsList = unary<ListMetricDescriptorsRequest, ListMetricDescriptorsResponse>(async () => ({
  descriptors: METRIC_DESCRIPTORS.map((m) => ({ name: m.name, help: m.help, label_keys: m.labelKeys })),
}));

export const sandboxMetricsList = unary<ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse>(async (d) => ({
  pod_metrics: await Promise.all(matchingPods(d, null).map((p) => podMetrics(d, p))),
}));

export const sandboxMetricsStream = serverStream<StreamPodSandboxMetricsRequest, StreamPodSandboxMetricsResponse>(async (d, _req, send, ctx) => {
  for (const batch of batches(matchingPods(d, null))) {
    if (ctx.signal.aborted) return;
    send({ pod_sandbox_metrics: await Promise.all(batch.map((p) => podMetrics(d, p))) });
  }
});
