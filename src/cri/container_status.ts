import { toCriContainerStatus } from "./container_convert.ts";
import { unary } from "./rpc.ts";
import type { ContainerStatusRequest, ContainerStatusResponse } from "../protocol/types.ts";

export const containerStatus = unary<ContainerStatusRequest, ContainerStatusResponse>(async (d, req) => {
  const c = d.containers.get(req.container_id);
  const info: Record<string, string> = {};
  if (req.verbose) {
    const fs = d.containers.fs.paths(c.id);
    info.info = JSON.stringify({ pid: undefined, sandboxID: c.podId, rootfs: fs.rootfs, upperDir: fs.upper, nameKey: c.nameKey, imageRef: c.imageRef });
  }
  return { status: toCriContainerStatus(d, c), info };
});
