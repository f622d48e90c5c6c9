import { unary } from "./rpc.ts";
import type { UpdateContainerResourcesRequest, UpdateContainerResourcesResponse } from "../protocol/types.ts";

export const containerUpdateResources = unary<UpdateContainerResourcesRequest, UpdateContainerResourcesResponse>(async (d, req) => {
  await d.containers.updateResources(req.container_id, req.linux);
  return {};
});
