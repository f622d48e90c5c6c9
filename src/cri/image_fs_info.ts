import { nowNs } from "../state/boot.ts";
import { unary } from "./rpc.ts";
import type { ImageFsInfoRequest, ImageFsInfoResponse } from "../protocol/types.ts";

// Bytes and inodes crib itself holds (blobs + unpacked layers), not the whole
// filesystem: the kubelet's image GC compares this with the disk's capacity.
export const imageFsInfo = unary<ImageFsInfoRequest, ImageFsInfoResponse>(async (d) => {
  const u = await d.images.usage();
  const timestamp = nowNs();
  return {
    image_filesystems: [
      {
        timestamp,
        fs_id: { mountpoint: d.config.root },
        used_bytes: { value: BigInt(u.blobBytes + u.layerBytes + u.ingestBytes) },
        inodes_used: { value: BigInt(u.blobCount + u.layerInodes) },
      },
    ],
    // Container writable layers live under the same root (one filesystem).
    container_filesystems: [{ timestamp, fs_id: { mountpoint: d.config.root }, used_bytes: { value: 0n }, inodes_used: { value: 0n } }],
  };
});
