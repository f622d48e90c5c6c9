import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { CreateContainerRequest, CreateContainerResponse } from "../protocol/types.ts";

export const containerCreate = unary<CreateContainerRequest, CreateContainerResponse>(async (d, req, ctx) => {
  if (!req.pod_sandbox_id) throw invalidArgument("CreateContainer: pod_sandbox_id is empty");
  if (!req.config) throw invalidArgument("CreateContainer: config is missing");
  return { container_id: await d.containers.create(req.pod_sandbox_id, req.config, ctx.signal) };
});
