// crib.v1 LoadImages: the daemon reads an archive on the node (ctl runs there as
// root) rather than receiving its bytes: no copy through gRPC, no 16 MiB message
// limit to stream around, and the daemon's file system is where the blobs go.
import { isAbsolute } from "node:path";
import { invalidArgument } from "../errors.ts";
import { loadArchive } from "../image/archive/load.ts";
import { toLoadedImage } from "./crib_images.ts";
import { unary } from "./rpc.ts";
import type { LoadImagesRequest, LoadImagesResponse } from "../protocol/types.ts";

export const cribLoadImages = unary<LoadImagesRequest, LoadImagesResponse>(async (d, req, ctx) => {
  if (!req.path || !isAbsolute(req.path)) throw invalidArgument(`LoadImages: path must be an absolute path on the node, got ${JSON.stringify(req.path)}`);
  const r = await loadArchive(d.images, req.path, d.config.pull.platform, { signal: ctx.signal });
  return { format: r.format, images: r.images.map(toLoadedImage), warnings: r.warnings };
});
