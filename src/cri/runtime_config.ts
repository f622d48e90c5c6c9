import { unary } from "./rpc.ts";
import { CgroupDriver, type RuntimeConfigRequest, type RuntimeConfigResponse } from "../protocol/types.ts";

// The kubelet (1.28+) asks which cgroup driver to use instead of its own flag.
export const runtimeConfig = unary<RuntimeConfigRequest, RuntimeConfigResponse>(async (d) => ({
  linux: { cgroup_driver: d.config.runtime.cgroupDriver === "systemd" ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS },
}));
