import { unary } from "./rpc.ts";
import type { ReopenContainerLogRequest, ReopenContainerLogResponse } from "../protocol/types.ts";

export const containerReopenLog = unary<ReopenContainerLogRequest, ReopenContainerLogResponse>(async (d, req) => {
  await d.containers.reopenLog(req.container_id);
  return {};
});
