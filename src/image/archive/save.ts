// crib ctl save: write images as an OCI image layout in a tar, with a docker
// manifest.json beside index.json so `docker load` and `ctr import` read it too.
// Blobs are the stored ones, byte for byte (manifest, config, compressed
// layers), so loading the archive anywhere gives the same digests. An image
// pulled through an index is saved with its platform manifest only (the other
// platforms' blobs were never fetched).
import { open, rename, rm, stat } from "node:fs/promises";
import { dirname, isAbsolute } from "node:path";
import { errnoCode, errorMessage, internal, invalidArgument, notFound, resourceExhausted } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import type { ImageService } from "../image_service.ts";
import type { ImageRecord } from "../image_store.ts";
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor } from "../manifest.ts";
import { NAME_ANNOTATION, REF_NAME_ANNOTATION } from "./load.ts";
import { blobPath } from "./stage.ts";
import { TarWriter } from "./tar_write.ts";
import { randomHex } from "../../util/random_hex.ts";

const logger = log.with({ component: "image-archive" });

export interface SaveResult {
  images: ImageRecord[];
  /** Size of the archive written. */
  bytes: number;
}

/** Write the images named by `texts` (names or ids) to `path`, atomically. */
export async function saveArchive(images: ImageService, texts: string[], path: string): Promise<SaveResult> {
  if (texts.length === 0) throw invalidArgument("no image to save: name at least one");
  if (!isAbsolute(path)) throw invalidArgument(`archive path ${JSON.stringify(path)} must be absolute (the daemon writes it)`);
  const st = await stat(dirname(path)).catch(() => undefined);
  if (!st?.isDirectory()) throw notFound(`cannot write ${path}: directory ${dirname(path)} does not exist`);

  const chosen = new Map<string, ImageRecord>();
  for (const t of texts) {
    const rec = images.find(t);
    if (!rec) throw notFound(`image "${t}" not found`);
    chosen.set(rec.id, rec);
  }
  const recs = [...chosen.values()];
  const release = images.hold(recs.flatMap((r) => [r.manifestDigest, r.id, ...r.layers.map((l) => l.digest)]));
  const tmp = `${path}.tmp-${randomHex(4)}`;
  try {
    const indexEntries: Descriptor[] = [];
    const dockerEntries: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const blobs = new Set<string>();
    for (const r of recs) {
      const bytes = await images.blobs.readBytes(r.manifestDigest, MAX_MANIFEST_BYTES);
      const m = parseManifest(bytes, { what: `manifest ${r.manifestDigest} of image ${r.id}` });
      if (m.kind !== "manifest") throw invalidArgument(`image ${r.id}: ${r.manifestDigest} is an index, not a manifest`);
      for (const d of [r.manifestDigest, m.config.digest, ...m.layers.map((l) => l.digest)]) blobs.add(d);
      const desc = { mediaType: m.mediaType, digest: r.manifestDigest, size: bytes.length };
      const tags = r.names.filter((n) => !n.includes("@"));
      // Without a tag, a digest name still says which repository it is.
      const named = tags.length > 0 ? tags : r.names.slice(0, 1);
      if (named.length === 0) indexEntries.push(desc);
      for (const n of named) indexEntries.push({ ...desc, annotations: { [NAME_ANNOTATION]: n, [REF_NAME_ANNOTATION]: n } });
      dockerEntries.push({ Config: blobPath(m.config.digest), RepoTags: tags, Layers: m.layers.map((l) => blobPath(l.digest)) });
    }

    const fh = await open(tmp, "wx", 0o644);
    let bytes: number;
    try {
      const tar = new TarWriter(fh);
      const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
      const layout = json({ imageLayoutVersion: "1.0.0" });
      await tar.file("oci-layout", layout.length, layout);
      await tar.dir("blobs");
      for (const alg of new Set([...blobs].map((d) => d.split(":")[0]!))) await tar.dir(`blobs/${alg}`);
      for (const d of [...blobs].sort()) {
        const size = await images.blobs.size(d);
        await tar.file(blobPath(d), size, Bun.file(images.blobs.path(d)).stream());
      }
      const index = json({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: indexEntries });
      await tar.file("index.json", index.length, index);
      const manifest = json(dockerEntries);
      await tar.file("manifest.json", manifest.length, manifest);
      await tar.end();
      await fh.sync();
      bytes = tar.bytes;
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    logger.info("saved image archive", { archive: path, images: recs.map((r) => r.id), bytes });
    return { images: recs, bytes };
  } catch (e) {
    await rm(tmp, { force: true });
    const code = errnoCode(e);
    if (code === "ENOSPC" || code === "EDQUOT") throw resourceExhausted(`cannot write ${path}: ${errorMessage(e)}`, e);
    if (code !== undefined) throw internal(`cannot write ${path}: ${errorMessage(e)}`, e);
    throw e;
  } finally {
    release();
  }
}
