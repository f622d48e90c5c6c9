import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { StopPodSandboxRequest, StopPodSandboxResponse } from "../protocol/types.ts";

// Idempotent: an absent pod is already stopped.
export const sandboxStop = unary<StopPodSandboxRequest, StopPodSandboxResponse>(async (d, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument("StopPodSandbox: pod_sandbox_id is empty");
  await d.pods.stop(req.pod_sandbox_id);
  return {};
});
