import type { CriContext } from "./context.ts";
import { batches, labelsMatch } from "./filters.ts";
import { serverStream, unary } from "./rpc.ts";
import { toCriPod } from "./sandbox_status.ts";
import type { ListPodSandboxRequest, ListPodSandboxResponse, Out, PodSandbox, PodSandboxFilter, StreamPodSandboxesRequest, StreamPodSandboxesResponse } from "../protocol/types.ts";

function listPods(d: CriContext, f: PodSandboxFilter | null): Out<PodSandbox>[] {
  return d.pods
    .list()
    .filter((p) => !f || ((!f.id || p.id.startsWith(f.id)) && (!f.state || p.state === f.state.state) && labelsMatch(p.config.labels, f.label_selector)))
    .map(toCriPod);
}

export const sandboxList = unary<ListPodSandboxRequest, ListPodSandboxResponse>(async (d, req) => ({ items: listPods(d, req.filter) }));

export const sandboxStream = serverStream<StreamPodSandboxesRequest, StreamPodSandboxesResponse>(async (d, req, send) => {
  for (const batch of batches(listPods(d, req.filter))) send({ pod_sandboxes: batch });
});
