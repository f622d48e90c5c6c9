// crib.v1 SaveImages: the daemon writes the archive at a path on the node.
import { saveArchive } from "../image/archive/save.ts";
import { toLoadedImage } from "./crib_images.ts";
import { unary } from "./rpc.ts";
import type { SaveImagesRequest, SaveImagesResponse } from "../protocol/types.ts";

export const cribSaveImages = unary<SaveImagesRequest, SaveImagesResponse>(async (d, req) => {
  const r = await saveArchive(d.images, req.images, req.path);
  return { images: r.images.map(toLoadedImage), bytes: BigInt(r.bytes) };
});
