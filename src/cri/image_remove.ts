import { assertImageSpec } from "../image/image_service.ts";
import { unary } from "./rpc.ts";
import type { RemoveImageRequest, RemoveImageResponse } from "../protocol/types.ts";

// Idempotent: removing an absent image succeeds, as the kubelet's GC expects.
export const imageRemove = unary<RemoveImageRequest, RemoveImageResponse>(async (d, req) => {
  await d.images.remove(assertImageSpec(req.image, "RemoveImage"));
  return {};
});
