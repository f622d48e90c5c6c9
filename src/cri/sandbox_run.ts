import { handlerFeatures } from "../container/runtime_features.ts";
import { failedPrecondition, invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import { NamespaceMode, type RunPodSandboxRequest, type RunPodSandboxResponse } from "../protocol/types.ts";

export const sandboxRun = unary<RunPodSandboxRequest, RunPodSandboxResponse>(async (d, req, ctx) => {
  if (!req.config) throw invalidArgument("RunPodSandbox: config is missing");
  const userns = req.config.linux?.security_context?.namespace_options?.userns_options;
  if (userns && userns.mode !== NamespaceMode.NODE) {
    // Only where RuntimeStatus says so: a kubelet should not ask otherwise, a client might.
    const name = req.runtime_handler || d.config.runtime.default;
    const handler = d.config.runtime.handlers[name];
    const support = handler ? (await handlerFeatures(name, handler.path)).userNamespaces : undefined;
    if (support && !support.supported) throw failedPrecondition(`RunPodSandbox: user namespaces are not available with runtime handler "${name}": ${support.reason}`);
  }
  return { pod_sandbox_id: await d.pods.run(req.config, req.runtime_handler, ctx.signal) };
});
