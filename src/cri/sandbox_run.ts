import { handlerFeatures } from "../container/runtime_features.ts";
import { failedPrecondition, invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import { NamespaceMode, type RunPodSandboxRequest, type RunPodSandboxResponse } from "../protocol/types.ts";

export const sandboxRun = unary<RunPodSandboxRequest, RunPodSandboxResponse>(async (d, req, ctx) => {
  if (!req.config) throw invalidArgument("RunPodSandbox: config is missing");
  const sc = req.config.linux?.security_context;
  // The CRI allows a group only with a user; the kubelet validates this too, so only other clients get here.
  if (sc?.run_as_group && !sc.run_as_user) {
    throw invalidArgument("RunPodSandbox: config.linux.security_context.run_as_group is set without run_as_user; set both or neither");
  }
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
