// ImageRecord -> crib.v1 LoadedImage, shared by LoadImages, SaveImages and PinImage.
import type { ImageRecord } from "../image/image_store.ts";
import type { LoadedImage, Out } from "../protocol/types.ts";

export function toLoadedImage(r: ImageRecord): Out<LoadedImage> {
  return {
    id: r.id,
    repo_tags: r.names.filter((n) => !n.includes("@")),
    repo_digests: r.names.filter((n) => n.includes("@")),
    size: BigInt(r.size),
    pinned: r.pinned,
  };
}
