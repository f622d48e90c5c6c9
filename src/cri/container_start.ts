import { unary } from "./rpc.ts";
import type { StartContainerRequest, StartContainerResponse } from "../protocol/types.ts";

export const containerStart = unary<StartContainerRequest, StartContainerResponse>(async (d, req) => {
  await d.containers.start(req.container_id);
  return {};
});
