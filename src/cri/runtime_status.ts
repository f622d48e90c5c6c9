import { redactedConfig } from "../config/config.ts";
import { criHandlerFeatures, featureReport, NODE_FEATURES } from "../container/runtime_features.ts";
import { runtimeReadiness, networkReadiness } from "../daemon/readiness.ts";
import { unary } from "./rpc.ts";
import type { StatusRequest, StatusResponse } from "./types.ts";

export const runtimeStatus = unary<StatusRequest, StatusResponse>(async (d, req) => {
  const [runtime, network] = await Promise.all([runtimeReadiness(d.config), networkReadiness(d.config)]);
  const info: Record<string, string> = {};
  if (req.verbose) {
    // crictl info prints each value; JSON is what it and kubeadm parse. kubeadm's
    // preflight reads config.sandboxImage (containerd's key) and warns when it
    // differs from the pause image it deploys.
    info.config = JSON.stringify({ ...redactedConfig(d.config), sandboxImage: d.config.image.pauseImage });
    info.configSource = d.configSource;
    // Per handler, each node feature and why it is off (`crib ctl info` prints it).
    info.featureSupport = JSON.stringify(await featureReport(d.config.runtime.handlers));
  }
  return {
    status: {
      conditions: [
        { type: "RuntimeReady", status: runtime.ready, reason: runtime.reason, message: runtime.message },
        { type: "NetworkReady", status: network.ready, reason: network.reason, message: network.message },
      ],
    },
    info,
    runtime_handlers: await Promise.all(
      Object.entries(d.config.runtime.handlers).map(async ([name, h]) => ({ name, features: await criHandlerFeatures(name, h.path) })),
    ),
    features: { supplemental_groups_policy: NODE_FEATURES.supplementalGroupsPolicy.supported, user_namespaces_host_network: NODE_FEATURES.userNamespacesHostNetwork.supported },
  };
});
