import { CRI_API_VERSION, RUNTIME_NAME, VERSION } from "../version.ts";
import { unary } from "./rpc.ts";
import type { VersionRequest, VersionResponse } from "../protocol/types.ts";

export const runtimeVersion = unary<VersionRequest, VersionResponse>(async () => ({
  // `version` is the kubelet's CRI API version; crib answers with its own API version.
  version: "0.1.0",
  runtime_name: RUNTIME_NAME,
  runtime_version: VERSION,
  runtime_api_version: CRI_API_VERSION,
}));
