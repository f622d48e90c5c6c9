// crib ctl load: import the images of an archive into the store. Two formats:
//
// - an OCI image layout in a tar (skopeo/podman oci-archive, crib ctl save,
//   docker 25+ save): index.json names manifests (or indexes, resolved to this
//   node's platform); names come from the `io.containerd.image.name` or
//   `org.opencontainers.image.ref.name` annotations;
// - a docker-save archive: manifest.json lists Config, RepoTags and Layers
//   (files named by path, layers uncompressed or compressed); crib stores a
//   Docker schema 2 manifest made from them.
//
// Every blob is verified (content against its digest, size against its
// descriptor), moved into the blob store and unpacked through the same layer
// applier as a pull; an image is recorded only once all of its layers are in.
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CribError, errorMessage, failedPrecondition, invalidArgument, notFound } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import type { BlobStore } from "../blob_store.ts";
import { digestOf } from "../digest.ts";
import type { ImageService } from "../image_service.ts";
import type { ImageRecord } from "../image_store.ts";
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseManifest, selectPlatform, type Descriptor, type ImageManifest, type Platform } from "../manifest.ts";
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_MANIFEST, isIndexType, isManifestType } from "../media_types.ts";
import { parseReference, repoDigest, repoTag } from "../reference.ts";
import { blobPath, sniffFile, stageArchive, type StagedArchive, type StagedFile } from "./stage.ts";
import { randomHex } from "../../util/random_hex.ts";

const logger = log.with({ component: "image-archive" });

/** Annotations that name an image in an OCI index (containerd's full name first). */
export const NAME_ANNOTATION = "io.containerd.image.name";
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
const MAX_INDEX_DEPTH = 3;

export interface LoadResult {
  format: "oci" | "docker";
  images: ImageRecord[];
  /** Things a person should know (an image without a name, an entry skipped). */
  warnings: string[];
}

/** One image found in the archive, before it is imported. */
interface Candidate {
  manifestDigest: string;
  manifest: ImageManifest;
  /** Set for a docker-save image: the manifest crib made (not a blob of the archive). */
  madeManifest?: Uint8Array;
  indexDigest?: string;
  names: Set<string>;
  /** Blob digest -> staged file. */
  files: Map<string, StagedFile>;
}

/** Image names from a reference text: repo:tag, and repo@digest when the digest is the registry's. */
function namesFor(text: string, topDigest: string | undefined, what: string, warnings: string[]): string[] {
  let ref;
  try {
    ref = parseReference(text);
  } catch (e) {
    warnings.push(`${what}: name ${JSON.stringify(text)} is not an image reference (${errorMessage(e)}); ignored`);
    return [];
  }
  const out: string[] = [];
  const tag = repoTag(ref);
  if (tag) out.push(tag);
  if (ref.digest) {
    if (topDigest && ref.digest !== topDigest) warnings.push(`${what}: name ${text} names digest ${ref.digest}, but the image is ${topDigest}; digest name ignored`);
    else out.push(repoDigest(ref, ref.digest));
  } else if (topDigest) {
    out.push(repoDigest(ref, topDigest));
  }
  return out;
}

/** A blob of an OCI layout, checked against its descriptor. */
function layoutBlob(archive: StagedArchive, desc: Descriptor, what: string): StagedFile {
  const f = archive.get(blobPath(desc.digest));
  if (!f) throw failedPrecondition(`${archive.what} lacks blob ${desc.digest} (${what})`);
  if (f.size !== desc.size) throw invalidArgument(`${archive.what}: blob ${desc.digest} is ${f.size} bytes, but ${what} says ${desc.size}`);
  return f;
}

async function readJsonBlob(archive: StagedArchive, desc: Descriptor, what: string): Promise<Uint8Array> {
  layoutBlob(archive, desc, what);
  return archive.read(blobPath(desc.digest), MAX_MANIFEST_BYTES);
}

/** The images of an OCI layout: index.json entries, nested indexes resolved to `platform`. */
async function ociCandidates(archive: StagedArchive, platform: Platform, warnings: string[]): Promise<Candidate[]> {
  const layout = new TextDecoder().decode(await archive.read("oci-layout", 64 * 1024));
  try {
    const v = (JSON.parse(layout) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    if (typeof v !== "string" || !v.startsWith("1.")) throw new Error(`imageLayoutVersion ${JSON.stringify(v)}`);
  } catch (e) {
    throw invalidArgument(`${archive.what}: oci-layout is not an OCI image layout version 1 file (${errorMessage(e)})`);
  }
  const index = parseManifest(await archive.read("index.json", MAX_MANIFEST_BYTES), { what: `index.json of ${archive.what}` });
  if (index.kind !== "index") throw invalidArgument(`${archive.what}: index.json is a manifest, not an image index`);

  const byManifest = new Map<string, Candidate>();
  for (const [i, top] of index.manifests.entries()) {
    const where = `index.json manifests[${i}]`;
    let desc = top;
    let indexDigest: string | undefined;
    for (let depth = 0; isIndexType(desc.mediaType); depth++) {
      if (depth >= MAX_INDEX_DEPTH) throw invalidArgument(`${archive.what}: ${where} nests indexes more than ${MAX_INDEX_DEPTH} deep`);
      const nested = parseManifest(await readJsonBlob(archive, desc, where), { what: `index ${desc.digest} in ${archive.what}` });
      if (nested.kind !== "index") throw invalidArgument(`${archive.what}: ${desc.digest} is declared an index but is a manifest`);
      indexDigest ??= desc.digest;
      desc = selectPlatform(nested, platform, `index ${desc.digest} in ${archive.what}`);
    }
    if (!isManifestType(desc.mediaType)) {
      warnings.push(`${where} (${desc.mediaType}) is not an image; skipped`);
      continue;
    }
    const parsed = parseManifest(await readJsonBlob(archive, desc, where), { what: `manifest ${desc.digest} in ${archive.what}` });
    if (parsed.kind !== "manifest") throw invalidArgument(`${archive.what}: ${desc.digest} is declared a manifest but is an index`);
    let c = byManifest.get(desc.digest);
    if (!c) {
      const files = new Map<string, StagedFile>();
      files.set(desc.digest, layoutBlob(archive, desc, where));
      if (indexDigest) files.set(indexDigest, archive.get(blobPath(indexDigest))!);
      files.set(parsed.config.digest, layoutBlob(archive, parsed.config, `the config of manifest ${desc.digest}`));
      for (const l of parsed.layers) files.set(l.digest, layoutBlob(archive, l, `a layer of manifest ${desc.digest}`));
      c = { manifestDigest: desc.digest, manifest: parsed, indexDigest, names: new Set(), files };
      byManifest.set(desc.digest, c);
    }
    const name = top.annotations?.[NAME_ANNOTATION] ?? top.annotations?.[REF_NAME_ANNOTATION];
    if (name === undefined) continue;
    // A bare tag ("v1", "latest") names no repository: nothing to record it under.
    if (!/[/:@]/.test(name)) {
      warnings.push(`${where} is named only ${JSON.stringify(name)} (a tag without a repository); loaded without that name`);
      continue;
    }
    for (const n of namesFor(name, indexDigest ?? desc.digest, where, warnings)) c.names.add(n);
  }

  // docker 25+ writes an OCI layout with a manifest.json beside it: its RepoTags name images too.
  if (archive.get("manifest.json")) {
    for (const e of await dockerEntries(archive)) {
      const cfg = archive.get(e.Config);
      const c = cfg && [...byManifest.values()].find((x) => x.manifest.config.digest === cfg.digest);
      for (const t of c ? e.RepoTags : []) for (const n of namesFor(t, undefined, "manifest.json", warnings)) c!.names.add(n);
    }
  }
  return [...byManifest.values()];
}

interface DockerEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

async function dockerEntries(archive: StagedArchive): Promise<DockerEntry[]> {
  const bytes = await archive.read("manifest.json", MAX_MANIFEST_BYTES);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw invalidArgument(`${archive.what}: manifest.json is not JSON (${errorMessage(e)})`);
  }
  const bad = (where: string, problem: string) => invalidArgument(`${archive.what}: manifest.json${where}: ${problem}`);
  if (!Array.isArray(doc)) throw bad("", "must be a list");
  return doc.map((e: unknown, i): DockerEntry => {
    if (typeof e !== "object" || e === null || Array.isArray(e)) throw bad(`[${i}]`, "must be an object");
    const o = e as Record<string, unknown>;
    if (typeof o.Config !== "string") throw bad(`[${i}].Config`, "must be a path");
    const strings = (k: string): string[] => {
      const v = o[k];
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw bad(`[${i}].${k}`, "must be a list of strings");
      return v as string[];
    };
    return { Config: o.Config, RepoTags: strings("RepoTags"), Layers: strings("Layers") };
  });
}

const DOCKER_LAYER_TYPES = { none: DOCKER_LAYER, gzip: DOCKER_LAYER_GZIP, zstd: DOCKER_LAYER_ZSTD } as const;

/** The images of a docker-save archive, each with a Docker schema 2 manifest made for it. */
async function dockerCandidates(archive: StagedArchive, warnings: string[]): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const [i, e] of (await dockerEntries(archive)).entries()) {
    const where = `manifest.json[${i}]`;
    const need = (p: string, what: string): StagedFile => {
      const f = archive.get(p);
      if (!f) throw failedPrecondition(`${archive.what} lacks ${p} (${what} of ${where})`);
      return f;
    };
    const cfg = need(e.Config, "the config");
    if (cfg.size > MAX_CONFIG_BYTES) throw invalidArgument(`${archive.what}: config ${e.Config} is ${cfg.size} bytes, over the ${MAX_CONFIG_BYTES} byte limit`);
    const files = new Map<string, StagedFile>([[cfg.digest, cfg]]);
    const layers: Descriptor[] = [];
    for (const p of e.Layers) {
      const f = need(p, "a layer");
      const compression = await sniffFile(f.path);
      if (compression === "xz" || compression === "bzip2") throw invalidArgument(`${archive.what}: layer ${p} is ${compression}-compressed; crib unpacks plain, gzip or zstd layers`);
      layers.push({ mediaType: DOCKER_LAYER_TYPES[compression], digest: f.digest, size: f.size });
      files.set(f.digest, f);
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, digest: cfg.digest, size: cfg.size },
      layers,
    };
    const bytes = new TextEncoder().encode(JSON.stringify(manifest));
    const parsed = parseManifest(bytes, { what: `the manifest made for ${where}` });
    if (parsed.kind !== "manifest") throw new Error("unreachable: a made manifest parsed as an index");
    const names = new Set<string>();
    for (const t of e.RepoTags) for (const n of namesFor(t, undefined, where, warnings)) names.add(n);
    out.push({ manifestDigest: digestOf(bytes), manifest: parsed, madeManifest: bytes, names, files });
  }
  return out;
}

/** Move a staged, verified file into the blob store (a rename: same file system). */
async function adopt(blobs: BlobStore, digest: string, file: StagedFile): Promise<void> {
  if (await blobs.has(digest)) return;
  const dest = blobs.path(digest);
  await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
  try {
    await rename(file.path, dest);
  } catch (e) {
    // Adopted already under another alias of the same staged file.
    if (await blobs.has(digest)) return;
    throw e;
  }
  const d = await open(dirname(dest), "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Load every image of the archive at `path` (read by the daemon: ctl runs on
 * the node). Images of an index are taken for `platform`.
 */
export async function loadArchive(images: ImageService, path: string, platform: Platform, opts: { signal?: AbortSignal } = {}): Promise<LoadResult> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw notFound(`cannot read image archive ${path}: ${errorMessage(e)}`);
  }
  if (!st.isFile()) throw invalidArgument(`${path} is not a file: crib ctl load takes a tar archive (OCI layout or docker save), optionally gzip- or zstd-compressed`);

  const started = performance.now();
  const dir = join(images.blobs.root, "ingest", `load-${randomHex(6)}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const archive = await stageArchive(path, dir, opts);
    const warnings: string[] = [];
    let format: LoadResult["format"];
    let candidates: Candidate[];
    if (archive.get("index.json") && archive.get("oci-layout")) {
      format = "oci";
      candidates = await ociCandidates(archive, platform, warnings);
    } else if (archive.get("manifest.json")) {
      format = "docker";
      candidates = await dockerCandidates(archive, warnings);
    } else {
      throw invalidArgument(`${archive.what} is neither an OCI image layout (oci-layout and index.json) nor a docker save archive (manifest.json)`);
    }
    if (candidates.length === 0) throw invalidArgument(`${archive.what} holds no image`);

    const records: ImageRecord[] = [];
    for (const c of candidates) {
      const release = images.hold([c.manifestDigest, ...c.files.keys()]);
      try {
        for (const [digest, file] of c.files) await adopt(images.blobs, digest, file);
        if (c.madeManifest) await images.blobs.writeBytes(c.manifestDigest, c.madeManifest);
        const names = [...c.names];
        const rec = await images.importImage({ manifestDigest: c.manifestDigest, manifest: c.manifest, indexDigest: c.indexDigest, names, source: archive.what }, opts.signal);
        if (names.length === 0) warnings.push(`image ${rec.id} has no name in the archive; refer to it by its id`);
        records.push(rec);
      } catch (e) {
        if (e instanceof CribError) throw e;
        throw failedPrecondition(`${archive.what}: image ${c.manifestDigest}: ${errorMessage(e)}`, e);
      } finally {
        release();
      }
    }
    logger.info("loaded image archive", { archive: path, format, images: records.length, ms: Math.round(performance.now() - started) });
    for (const w of warnings) logger.warn("image archive", { archive: path, warning: w });
    return { format, images: records, warnings };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
