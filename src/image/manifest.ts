// OCI image manifests and indexes (and their Docker schema 2 twins), image
// configs, and platform selection. Everything here is registry-supplied and
// hostile until validated: sizes are bounded, digests and media types checked.
import { CribError, failedPrecondition, invalidArgument, notFound, resourceExhausted } from "../errors.ts";
import { parseDigest } from "./digest.ts";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  isConfigType,
  isIndexType,
  isManifestType,
  isSchema1Type,
  layerCompression,
  OCI_INDEX,
  OCI_MANIFEST,
} from "./media_types.ts";

/** Largest manifest, index or image config crib reads into memory. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** A content descriptor: what a manifest says about a blob it points to. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  kind: "manifest";
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  kind: "index";
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export type ParsedManifest = ImageManifest | ImageIndex;

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    Labels?: Record<string, string>;
    StopSignal?: string;
  };
  rootfs: { type: string; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }>;
}

type Json = Record<string, unknown>;

const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** Thrown for content that is not what it claims to be; `where` is a JSON path. */
function bad(what: string, where: string, problem: string): CribError {
  return invalidArgument(`invalid ${what}: ${where ? `${where}: ` : ""}${problem}`);
}

function decodeJson(bytes: Uint8Array, what: string, limit: number): unknown {
  if (bytes.length > limit) {
    throw resourceExhausted(`${what} is ${bytes.length} bytes, over the ${limit} byte limit`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw bad(what, "", "not UTF-8 text");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw bad(what, "", `not JSON (${(e as Error).message})`);
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(o: Json, key: string, what: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw bad(what, `${where}${key}`, "must be a string");
  return v;
}

function reqString(o: Json, key: string, what: string, where: string): string {
  const v = optString(o, key, what, where);
  if (v === undefined) throw bad(what, `${where}${key}`, "is missing");
  return v;
}

function optStringList(o: Json, key: string, what: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw bad(what, `${where}${key}`, "must be a list of strings");
  }
  return v as string[];
}

function optStringMap(o: Json, key: string, what: string, where: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === "string")) {
    throw bad(what, `${where}${key}`, "must be a map of strings");
  }
  return v as Record<string, string>;
}

function optObjectSet(o: Json, key: string, what: string, where: string): Record<string, object> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => isObject(x))) {
    throw bad(what, `${where}${key}`, "must be a map of objects");
  }
  return v as Record<string, object>;
}

function parsePlatform(v: unknown, what: string, where: string): Platform {
  if (!isObject(v)) throw bad(what, where, "must be an object");
  const p: Platform = {
    os: reqString(v, "os", what, `${where}.`),
    architecture: reqString(v, "architecture", what, `${where}.`),
  };
  const variant = optString(v, "variant", what, `${where}.`);
  if (variant !== undefined) p.variant = variant;
  const osVersion = optString(v, "os.version", what, `${where}.`);
  if (osVersion !== undefined) p["os.version"] = osVersion;
  const features = optStringList(v, "os.features", what, `${where}.`);
  if (features !== undefined) p["os.features"] = features;
  return p;
}

/** Validate one descriptor (mediaType, digest, size, urls, annotations, platform). */
export function parseDescriptor(v: unknown, what: string, where: string): Descriptor {
  if (!isObject(v)) throw bad(what, where, "must be an object");
  const mediaType = reqString(v, "mediaType", what, `${where}.`);
  if (!MEDIA_TYPE.test(mediaType)) throw bad(what, `${where}.mediaType`, `"${mediaType.slice(0, 100)}" is not a media type`);
  const digestText = reqString(v, "digest", what, `${where}.`);
  try {
    parseDigest(digestText);
  } catch (e) {
    throw bad(what, `${where}.digest`, (e as Error).message);
  }
  const size = v.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw bad(what, `${where}.size`, "must be a non-negative integer");
  }
  const d: Descriptor = { mediaType, digest: digestText, size };
  const urls = optStringList(v, "urls", what, `${where}.`);
  if (urls !== undefined) d.urls = urls;
  const annotations = optStringMap(v, "annotations", what, `${where}.`);
  if (annotations !== undefined) d.annotations = annotations;
  if (v.platform !== undefined && v.platform !== null) d.platform = parsePlatform(v.platform, what, `${where}.platform`);
  const artifactType = optString(v, "artifactType", what, `${where}.`);
  if (artifactType !== undefined) d.artifactType = artifactType;
  return d;
}

function schema1Refusal(what: string): CribError {
  return failedPrecondition(
    `${what} is a Docker schema 1 manifest, which crib does not support (deprecated since 2017); re-push the image with a current client as Docker schema 2 or OCI`,
  );
}

/**
 * Parse and validate a manifest or index. `contentType` is the HTTP
 * Content-Type it came with, if any; `what` names it in errors
 * ("manifest of docker.io/library/busybox:latest").
 */
export function parseManifest(bytes: Uint8Array, opts: { contentType?: string; what?: string } = {}): ParsedManifest {
  const what = opts.what ?? "manifest";
  const contentType = opts.contentType?.split(";")[0]?.trim().toLowerCase();
  if (contentType !== undefined && isSchema1Type(contentType)) throw schema1Refusal(what);
  const doc = decodeJson(bytes, what, MAX_MANIFEST_BYTES);
  if (!isObject(doc)) throw bad(what, "", "not a JSON object");
  if (doc.schemaVersion === 1) throw schema1Refusal(what);
  if (doc.schemaVersion !== 2) throw bad(what, "schemaVersion", `must be 2, got ${JSON.stringify(doc.schemaVersion) ?? "nothing"}`);

  const declared = optString(doc, "mediaType", what, "");
  let mediaType: string;
  if (declared !== undefined) mediaType = declared;
  else if (contentType !== undefined && (isIndexType(contentType) || isManifestType(contentType))) mediaType = contentType;
  else if (Array.isArray(doc.manifests)) mediaType = OCI_INDEX;
  else if (doc.config !== undefined) mediaType = OCI_MANIFEST;
  else throw bad(what, "", "neither a manifest (config, layers) nor an index (manifests)");
  if (isSchema1Type(mediaType)) throw schema1Refusal(what);

  const annotations = optStringMap(doc, "annotations", what, "");
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw bad(what, "manifests", "must be a list");
    const manifests = doc.manifests.map((m, i) => parseDescriptor(m, what, `manifests[${i}]`));
    const index: ImageIndex = { kind: "index", schemaVersion: 2, mediaType, manifests };
    if (annotations !== undefined) index.annotations = annotations;
    return index;
  }
  if (isManifestType(mediaType)) {
    if (doc.config === undefined) throw bad(what, "config", "is missing");
    const config = parseDescriptor(doc.config, what, "config");
    if (!isConfigType(config.mediaType)) {
      throw failedPrecondition(
        `${what} is not a container image: its config has media type "${config.mediaType}" (an OCI artifact?)`,
      );
    }
    if (!Array.isArray(doc.layers)) throw bad(what, "layers", "must be a list");
    const layers = doc.layers.map((l, i) => parseDescriptor(l, what, `layers[${i}]`));
    for (const layer of layers) {
      try {
        layerCompression(layer.mediaType);
      } catch (e) {
        throw failedPrecondition(`${what}: layer ${layer.digest}: ${(e as Error).message}`);
      }
    }
    const manifest: ImageManifest = { kind: "manifest", schemaVersion: 2, mediaType, config, layers };
    if (annotations !== undefined) manifest.annotations = annotations;
    return manifest;
  }
  throw failedPrecondition(
    `${what} has unsupported media type "${mediaType.slice(0, 200)}" (crib reads ${OCI_INDEX}, ${OCI_MANIFEST}, ${DOCKER_MANIFEST_LIST} and ${DOCKER_MANIFEST})`,
  );
}

// ---- Platforms ----

/** Normalise OS/architecture/variant names the way containerd does (aarch64 -> arm64, arm -> arm/v7, ...). */
export function normalizePlatform(p: { os: string; architecture: string; variant?: string }): { os: string; architecture: string; variant: string } {
  const os = p.os.toLowerCase();
  let arch = p.architecture.toLowerCase();
  let variant = (p.variant ?? "").toLowerCase();
  if (/^[0-9]+$/.test(variant)) variant = `v${variant}`;
  switch (arch) {
    case "i386":
      arch = "386";
      variant = "";
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      arch = "amd64";
      if (variant === "v1") variant = "";
      break;
    case "aarch64":
    case "arm64":
      arch = "arm64";
      if (variant === "") variant = "v8";
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === "") variant = "v7";
      break;
  }
  return { os, architecture: arch, variant };
}

/** "linux/arm64/v8", "linux/amd64". */
export function platformString(p: { os: string; architecture: string; variant?: string }): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/**
 * How well `have` suits a node of platform `want`: undefined when it cannot
 * run there, else a score (higher is better). OS and architecture must match
 * after normalisation. Variants: an empty wanted variant accepts any (amd64
 * ignores variants unless one is set); a wanted vN accepts an unvariant image
 * and any vM with M <= N (arm/v7 runs v6, amd64/v3 runs v2), preferring the
 * exact one; arm64's "v8" equals no variant.
 */
export function platformScore(want: Platform, have: Platform): number | undefined {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return undefined;
  if (w.variant === h.variant) return 3;
  if (w.variant === "") return 1;
  if (h.variant === "") return 1.5;
  const wn = /^v([0-9]+)$/.exec(w.variant);
  const hn = /^v([0-9]+)$/.exec(h.variant);
  if (wn && hn && Number(hn[1]) <= Number(wn[1])) return 2 + Number(hn[1]) / 1000;
  return undefined;
}

/**
 * Pick the manifest for a platform from an index. Entries that are not
 * manifests or indexes (attestations, artifacts) are skipped; an entry without
 * a platform is taken only when no entry names a matching one. Throws
 * not_found listing the platforms the index has.
 */
export function selectPlatform(index: ImageIndex, want: Platform, what = "image index"): Descriptor {
  let best: Descriptor | undefined;
  let bestScore = 0;
  let unplatformed: Descriptor | undefined;
  for (const d of index.manifests) {
    if (!isManifestType(d.mediaType) && !isIndexType(d.mediaType)) continue;
    if (d.platform === undefined) {
      unplatformed ??= d;
      continue;
    }
    const score = platformScore(want, d.platform);
    if (score !== undefined && score > bestScore) {
      best = d;
      bestScore = score;
    }
  }
  const chosen = best ?? unplatformed;
  if (chosen) return chosen;
  const available = [...new Set(index.manifests.filter((d) => d.platform).map((d) => platformString(d.platform!)))];
  throw notFound(
    `no image for platform ${platformString(want)} in ${what}; it has ${available.length > 0 ? available.join(", ") : "no platform-specific images"}`,
  );
}

// ---- Image config ----

/**
 * Parse and validate an image config. With `layers`, the number of diff_ids
 * must equal the manifest's layer count.
 */
export function parseImageConfig(bytes: Uint8Array, opts: { layers?: number; what?: string } = {}): ImageConfig {
  const what = opts.what ?? "image config";
  const doc = decodeJson(bytes, what, MAX_CONFIG_BYTES);
  if (!isObject(doc)) throw bad(what, "", "not a JSON object");
  const cfg: ImageConfig = {
    architecture: reqString(doc, "architecture", what, ""),
    os: reqString(doc, "os", what, ""),
    rootfs: { type: "layers", diff_ids: [] },
  };
  for (const key of ["variant", "created", "author"] as const) {
    const v = optString(doc, key, what, "");
    if (v !== undefined) cfg[key] = v;
  }

  if (doc.config !== undefined && doc.config !== null) {
    if (!isObject(doc.config)) throw bad(what, "config", "must be an object");
    const c = doc.config;
    const out: NonNullable<ImageConfig["config"]> = {};
    for (const key of ["User", "WorkingDir", "StopSignal"] as const) {
      const v = optString(c, key, what, "config.");
      if (v !== undefined) out[key] = v;
    }
    for (const key of ["Env", "Entrypoint", "Cmd"] as const) {
      const v = optStringList(c, key, what, "config.");
      if (v !== undefined) out[key] = v;
    }
    for (const key of ["ExposedPorts", "Volumes"] as const) {
      const v = optObjectSet(c, key, what, "config.");
      if (v !== undefined) out[key] = v;
    }
    const labels = optStringMap(c, "Labels", what, "config.");
    if (labels !== undefined) out.Labels = labels;
    cfg.config = out;
  }

  if (!isObject(doc.rootfs)) throw bad(what, "rootfs", "is missing or not an object");
  const type = reqString(doc.rootfs, "type", what, "rootfs.");
  if (type !== "layers") throw bad(what, "rootfs.type", `must be "layers", got "${type.slice(0, 50)}"`);
  const diffIds = optStringList(doc.rootfs, "diff_ids", what, "rootfs.") ?? [];
  diffIds.forEach((d, i) => {
    try {
      parseDigest(d);
    } catch (e) {
      throw bad(what, `rootfs.diff_ids[${i}]`, (e as Error).message);
    }
  });
  cfg.rootfs = { type, diff_ids: diffIds };
  if (opts.layers !== undefined && diffIds.length !== opts.layers) {
    throw bad(what, "rootfs.diff_ids", `has ${diffIds.length} entries but the manifest has ${opts.layers} layers`);
  }

  if (doc.history !== undefined && doc.history !== null) {
    if (!Array.isArray(doc.history)) throw bad(what, "history", "must be a list");
    cfg.history = doc.history.map((h, i) => {
      if (!isObject(h)) throw bad(what, `history[${i}]`, "must be an object");
      const entry: NonNullable<ImageConfig["history"]>[number] = {};
      for (const key of ["created", "created_by", "author", "comment"] as const) {
        const v = optString(h, key, what, `history[${i}].`);
        if (v !== undefined) entry[key] = v;
      }
      if (h.empty_layer !== undefined && h.empty_layer !== null) {
        if (typeof h.empty_layer !== "boolean") throw bad(what, `history[${i}].empty_layer`, "must be true or false");
        entry.empty_layer = h.empty_layer;
      }
      return entry;
    });
  }
  return cfg;
}
