import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { StopContainerRequest, StopContainerResponse } from "../protocol/types.ts";

// Idempotent: stopping an exited or absent container succeeds (CRI v1).
export const containerStop = unary<StopContainerRequest, StopContainerResponse>(async (d, req) => {
  if (!req.container_id) throw invalidArgument("StopContainer: container_id is empty");
  if (req.timeout < 0n) throw invalidArgument(`StopContainer: timeout ${req.timeout} is negative`);
  await d.containers.stop(req.container_id, Number(req.timeout));
  return {};
});
