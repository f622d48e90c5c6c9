// ImageRecord + image config -> the CRI Image message.
import type { ImageConfig } from "../image/manifest.ts";
import type { ImageRecord } from "../image/image_store.ts";
import type { Image, Out } from "../protocol/types.ts";

/** The image config's User, as the kubelet wants it: a numeric uid, or a name. */
export function imageUser(user: string): { uid?: bigint; username: string } {
  const u = user.split(":")[0] ?? "";
  if (u === "") return { username: "" };
  if (/^\d+$/.test(u)) return { uid: BigInt(u), username: "" };
  return { username: u };
}

export function toCriImage(rec: ImageRecord, config: ImageConfig): Out<Image> {
  const user = imageUser(config.config?.User ?? "");
  return {
    id: rec.id,
    repo_tags: rec.names.filter((n) => !n.includes("@")),
    repo_digests: rec.names.filter((n) => n.includes("@")),
    size: BigInt(rec.size),
    uid: user.uid !== undefined ? { value: user.uid } : null,
    username: user.username,
    spec: { image: rec.id, annotations: {} },
    pinned: rec.pinned,
  };
}
