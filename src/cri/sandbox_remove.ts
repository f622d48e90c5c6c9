import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { RemovePodSandboxRequest, RemovePodSandboxResponse } from "../protocol/types.ts";

// Idempotent: removing an absent pod succeeds.
export const sandboxRemove = unary<RemovePodSandboxRequest, RemovePodSandboxResponse>(async (d, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument("RemovePodSandbox: pod_sandbox_id is empty");
  await d.pods.remove(req.pod_sandbox_id);
  return {};
});
