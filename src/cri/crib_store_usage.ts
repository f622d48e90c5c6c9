import { unary } from "./rpc.ts";
import type { StoreUsageRequest, StoreUsageResponse } from "../protocol/types.ts";

export const cribStoreUsage = unary<StoreUsageRequest, StoreUsageResponse>(async (d) => {
  const u = await d.images.usage();
  return {
    images: BigInt(u.images),
    blob_count: BigInt(u.blobCount),
    blob_bytes: BigInt(u.blobBytes),
    layer_count: BigInt(u.layerCount),
    layer_bytes: BigInt(u.layerBytes),
    layer_inodes: BigInt(u.layerInodes),
    orphan_blobs: u.orphanBlobs,
    orphan_layers: u.orphanLayers,
    ingest_bytes: BigInt(u.ingestBytes),
  };
});
