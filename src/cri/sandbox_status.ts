import type { PodRecord } from "../pod/pod_store.ts";
import { unary } from "./rpc.ts";
import type { Out, PodSandbox, PodSandboxStatus, PodSandboxStatusRequest, PodSandboxStatusResponse } from "../protocol/types.ts";

export function toCriPod(p: PodRecord): Out<PodSandbox> {
  return {
    id: p.id,
    metadata: p.config.metadata,
    state: p.state as PodSandbox["state"],
    created_at: p.createdNs,
    labels: p.config.labels,
    annotations: p.config.annotations,
    runtime_handler: p.runtimeHandler,
  };
}

/** The list entry plus the pod's network and namespace options. */
export function toCriPodStatus(p: PodRecord): Out<PodSandboxStatus> {
  return {
    ...toCriPod(p),
    network: { ip: p.ips[0] ?? "", additional_ips: p.ips.slice(1).map((ip) => ({ ip })) },
    linux: { namespaces: { options: p.config.linux?.security_context?.namespace_options ?? null } },
  };
}

export const sandboxStatus = unary<PodSandboxStatusRequest, PodSandboxStatusResponse>(async (d, req) => {
  const p = d.pods.get(req.pod_sandbox_id);
  const info: Record<string, string> = {};
  if (req.verbose) {
    info.info = JSON.stringify({ namespaces: p.namespaces, podDir: d.pods.podDir(p.id), runtimeHandler: p.runtimeHandler, nameKey: p.nameKey });
  }
  return { status: toCriPodStatus(p), info, containers_statuses: [], timestamp: 0n };
});
