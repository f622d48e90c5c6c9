import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { RunPodSandboxRequest, RunPodSandboxResponse } from "../protocol/types.ts";

export const sandboxRun = unary<RunPodSandboxRequest, RunPodSandboxResponse>(async (d, req, ctx) => {
  if (!req.config) throw invalidArgument("RunPodSandbox: config is missing");
  const sc = req.config.linux?.security_context;
  // The CRI allows a group only with a user; the kubelet validates this too, so only other clients get here.
  if (sc?.run_as_group && !sc.run_as_user) {
    throw invalidArgument("RunPodSandbox: config.linux.security_context.run_as_group is set without run_as_user; set both or neither");
  }
  return { pod_sandbox_id: await d.pods.run(req.config, req.runtime_handler, ctx.signal) };
});
