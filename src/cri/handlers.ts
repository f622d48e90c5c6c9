// The table of implemented RPCs. Each handler lives in its own file, named
// object_verb as in CRI-O and containerd.
import type { CribHandlers, ImageHandlers, RuntimeHandlers } from "./rpc.ts";
import { runtimeConfig } from "./runtime_config.ts";
import { runtimeStatus } from "./runtime_status.ts";
import { runtimeVersion } from "./runtime_version.ts";

export const runtimeHandlers: RuntimeHandlers = {
  Version: runtimeVersion,
  Status: runtimeStatus,
  RuntimeConfig: runtimeConfig,
};

export const imageHandlers: ImageHandlers = {};

/** crib's own service (crib.proto), for crib ctl. */
export const cribHandlers: CribHandlers = {};
