import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { RunPodSandboxRequest, RunPodSandboxResponse } from "../protocol/types.ts";

export const sandboxRun = unary<RunPodSandboxRequest, RunPodSandboxResponse>(async (d, req, ctx) => {
  if (!req.config) throw invalidArgument("RunPodSandbox: config is missing");
  return { pod_sandbox_id: await d.pods.run(req.config, req.runtime_handler, ctx.signal) };
});
