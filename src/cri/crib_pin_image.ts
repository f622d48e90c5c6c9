// crib.v1 PinImage: pinned images are reported `pinned: true` in the CRI Image,
// so the kubelet's image GC keeps them. A manual RemoveImage still removes a
// pinned image, as in containerd: the kubelet never asks for it.
import { invalidArgument } from "../errors.ts";
import { toLoadedImage } from "./crib_images.ts";
import { unary } from "./rpc.ts";
import type { PinImageRequest, PinImageResponse } from "../protocol/types.ts";

export const cribPinImage = unary<PinImageRequest, PinImageResponse>(async (d, req) => {
  if (!req.image) throw invalidArgument("PinImage: image is empty: give a name, tag, digest or image id");
  return { image: toLoadedImage(d.images.setPinned(req.image, req.pinned)) };
});
