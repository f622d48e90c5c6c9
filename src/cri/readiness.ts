// RuntimeReady and NetworkReady as the kubelet reads them: ready, or a reason
// (CamelCase, as CRI-O and containerd use) and a message saying what to fix.
import type { Config } from "../config/config.ts";
import { confDirFor } from "../pod/cni/conf_dir.ts";
import { findExecutable } from "../util/executable.ts";

export interface Readiness { ready: boolean; reason: string; message: string }

const READY: Readiness = { ready: true, reason: "", message: "" };

export async function runtimeReadiness(config: Config): Promise<Readiness> {
  const handler = config.runtime.handlers[config.runtime.default];
  if (!handler) {
    return { ready: false, reason: "NoDefaultRuntime", message: `runtime.default "${config.runtime.default}" is not among runtime.handlers` };
  }
  if (!(await findExecutable(handler.path))) {
    return { ready: false, reason: "OCIRuntimeNotFound", message: `OCI runtime "${handler.path}" (handler ${config.runtime.default}) is not an executable on PATH; install runc or set runtime.handlers.${config.runtime.default}.path` };
  }
  return READY;
}

/** NetworkReady: a CNI network config list crib can run (parsable, plugins present). */
export async function networkReadiness(config: Config): Promise<Readiness> {
  const state = await confDirFor(config.cni).current();
  if (state.kind === "ready") return READY;
  return { ready: false, reason: "NetworkPluginNotReady", message: state.message };
}
