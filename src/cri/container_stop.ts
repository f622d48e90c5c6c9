import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { StopContainerRequest, StopContainerResponse } from "../protocol/types.ts";

// Idempotent: stopping an exited or absent container succeeds (CRI v1).
// A negative timeout kills at once, as 0 does (containerd): a stop is never refused for it.
export const containerStop = unary<StopContainerRequest, StopContainerResponse>(async (d, req) => {
  if (!req.container_id) throw invalidArgument("StopContainer: container_id is empty");
  await d.containers.stop(req.container_id, req.timeout > 0n ? Number(req.timeout) : 0);
  return {};
});
