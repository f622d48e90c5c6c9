import { unary } from "./rpc.ts";
import type { UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse } from "../protocol/types.ts";

// The kubelet sends the node's pod CIDR (from the Node object) here. crib
// keeps it for a future config template; the CNI config itself sets the ranges.
export const runtimeUpdateConfig = unary<UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse>(async (d, req) => {
  const cidr = req.runtime_config?.network_config?.pod_cidr ?? "";
  if (cidr !== "") d.cni.setPodCidr(cidr);
  return {};
});
