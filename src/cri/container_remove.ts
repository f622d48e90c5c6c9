import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { RemoveContainerRequest, RemoveContainerResponse } from "../protocol/types.ts";

// Idempotent: removing an absent container succeeds.
export const containerRemove = unary<RemoveContainerRequest, RemoveContainerResponse>(async (d, req) => {
  if (!req.container_id) throw invalidArgument("RemoveContainer: container_id is empty");
  await d.containers.remove(req.container_id);
  return {};
});
