import { redactedConfig } from "../config/config.ts";
import { criHandlerFeatures, featureReport, NODE_FEATURES } from "../container/runtime_features.ts";
import { runtimeReadiness, networkReadiness } from "../cri/readiness.ts";
import { findExecutable } from "../util/executable.ts";
import type { Config } from "../config/config.ts";
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
    runtime_handlers: await installedHandlers(d.config.runtime),
    features: { supplemental_groups_policy: NODE_FEATURES.supplementalGroupsPolicy.supported, user_namespaces_host_network: NODE_FEATURES.userNamespacesHostNetwork.supported },
  };
});

/**
 * The handlers a pod can really run on: those whose runtime binary is there, the
 * default one also under "" (the API's name for it, which is what a kubelet looks
 * up for a pod without a RuntimeClass, e.g. before it allows hostUsers: false).
 */
async function installedHandlers(runtime: Config["runtime"]): Promise<StatusResponse["runtime_handlers"]> {
  const out: StatusResponse["runtime_handlers"] = [];
  for (const [name, h] of Object.entries(runtime.handlers)) {
    if (!(await findExecutable(h.path))) continue;
    const features = await criHandlerFeatures(name, h.path);
    if (name === runtime.default) out.unshift({ name: "", features });
    out.push({ name, features });
  }
  return out;
}
