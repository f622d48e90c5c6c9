import { assertImageSpec } from "../image/image_service.ts";
import { toCriImage } from "./image_convert.ts";
import { unary } from "./rpc.ts";
import type { ImageStatusRequest, ImageStatusResponse } from "../protocol/types.ts";

// An absent image is not an error: the kubelet expects `image` unset.
export const imageStatus = unary<ImageStatusRequest, ImageStatusResponse>(async (d, req) => {
  const text = assertImageSpec(req.image, "ImageStatus");
  const rec = d.images.find(text);
  if (!rec) return { image: null, info: {} };
  const config = await d.images.imageConfig(rec);
  const info: Record<string, string> = {};
  if (req.verbose) {
    info.info = JSON.stringify({
      id: rec.id,
      names: rec.names,
      manifestDigest: rec.manifestDigest,
      topDigest: rec.topDigest,
      layers: rec.layers,
      imageSpec: config,
    });
  }
  return { image: toCriImage(rec, config), info };
});
