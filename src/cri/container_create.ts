import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { CreateContainerRequest, CreateContainerResponse } from "../protocol/types.ts";

export const containerCreate = unary<CreateContainerRequest, CreateContainerResponse>(async (d, req, ctx) => {
  if (!req.pod_sandbox_id) throw invalidArgument("CreateContainer: pod_sandbox_id is empty");
  if (!req.config) throw invalidArgument("CreateContainer: config is missing");
  const sc = req.config.linux?.security_context;
  // The CRI allows a group only with a user (by id or name); the image's user is no substitute.
  if (sc?.run_as_group && !sc.run_as_user && !sc.run_as_username) {
    throw invalidArgument("CreateContainer: config.linux.security_context.run_as_group is set without run_as_user or run_as_username; set a user too");
  }
  return { container_id: await d.containers.create(req.pod_sandbox_id, req.config, ctx.signal) };
});
