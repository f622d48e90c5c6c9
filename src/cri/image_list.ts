import type { CriContext } from "./context.ts";
import { toCriImage } from "./image_convert.ts";
import { batches } from "./filters.ts";
import { serverStream, unary } from "./rpc.ts";
import type { Image, ImageFilter, ListImagesRequest, ListImagesResponse, Out, StreamImagesRequest, StreamImagesResponse } from "../protocol/types.ts";

async function listImages(d: CriContext, filter: ImageFilter | null): Promise<Out<Image>[]> {
  const wanted = filter?.image?.image;
  const records = wanted ? [d.images.find(wanted)].filter((r) => r !== undefined) : d.images.list();
  return Promise.all(records.map(async (r) => toCriImage(r, await d.images.imageConfig(r))));
}

export const imageList = unary<ListImagesRequest, ListImagesResponse>(async (d, req) => ({ images: await listImages(d, req.filter) }));

export const imageStream = serverStream<StreamImagesRequest, StreamImagesResponse>(async (d, req, send) => {
  for (const batch of batches(await listImages(d, req.filter))) send({ images: batch });
});
