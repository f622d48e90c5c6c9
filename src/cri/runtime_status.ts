import { redactedConfig } from "../config/config.ts";
import { runtimeReadiness, networkReadiness } from "./readiness.ts";
import { unary } from "./rpc.ts";
import type { StatusRequest, StatusResponse } from "../protocol/types.ts";

export const runtimeStatus = unary<StatusRequest, StatusResponse>(async (d, req) => {
  const [runtime, network] = await Promise.all([runtimeReadiness(d.config), networkReadiness(d.config)]);
  const info: Record<string, string> = {};
  if (req.verbose) {
    // crictl info prints each value; JSON is what it and kubeadm parse. kubeadm's
    // preflight reads config.sandboxImage (containerd's key) and warns when it
    // differs from the pause image it deploys.
    info.config = JSON.stringify({ ...redactedConfig(d.config), sandboxImage: d.config.image.pauseImage });
    info.configSource = d.configSource;
  }
  return {
    status: {
      conditions: [
        { type: "RuntimeReady", status: runtime.ready, reason: runtime.reason, message: runtime.message },
        { type: "NetworkReady", status: network.ready, reason: network.reason, message: network.message },
      ],
    },
    info,
    runtime_handlers: Object.keys(d.config.runtime.handlers).map((name) => ({
      name,
      features: { recursive_read_only_mounts: false, user_namespaces: false },
    })),
    features: { supplemental_groups_policy: false, user_namespaces_host_network: false },
  };
});
