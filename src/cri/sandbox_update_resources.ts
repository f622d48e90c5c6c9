import { invalidArgument } from "../errors.ts";
import { planResources } from "../container/spec/resources.ts";
import { unary } from "./rpc.ts";
import type { UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse } from "../protocol/types.ts";

// The kubelet (in-place pod resize) resizes the pod's own cgroup itself: crib keeps no
// pod-level cgroup, as containerd without NRI plugins. So the request is checked (the
// pod exists, the values are ones a container update would take) and accepted; the
// containers' own limits come with UpdateContainerResources.
export const sandboxUpdateResources = unary<UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse>(async (d, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument("UpdatePodSandboxResources: pod_sandbox_id is empty");
  d.pods.get(req.pod_sandbox_id);
  // Checked for shape only: nothing here is applied, so a missing controller is no error.
  planResources(req.overhead, { swap: false, hugetlb: true });
  planResources(req.resources, { swap: false, hugetlb: true });
  return {};
});
