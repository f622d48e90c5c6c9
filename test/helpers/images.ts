// Builds test images in memory (tar layers from TarEntry lists, an image config, a
// manifest) and pushes them to a TestRegistry over the OCI distribution API with plain
// fetch: monolithic blob uploads (POST then PUT ?digest=) and manifest PUTs, answering
// whatever auth challenge the registry sends (Basic, or Bearer via its token realm).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { TestRegistry } from "./registry.ts";
import { DEFAULT_MTIME, tarBytes, type TarEntry } from "./tar.ts";

export type Compression = "gzip" | "zstd" | "none";

export interface ImageConfigSpec {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  ExposedPorts?: Record<string, object>;
  StopSignal?: string;
  Labels?: Record<string, string>;
  Volumes?: Record<string, object>;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface PushImageOptions {
  /** Default "oci". */
  format?: "oci" | "docker";
  /** Default "gzip". Docker format has no zstd media type, so zstd is refused there. */
  compression?: Compression;
  layers: TarEntry[][];
  config?: ImageConfigSpec;
  /** Default "linux". */
  os?: string;
  /** Default "amd64". */
  architecture?: string;
  variant?: string;
  /** Default: the credentials of the registry returned by startRegistry, if any. */
  auth?: Credentials;
}

export interface PushedLayer {
  /** Digest of the blob as stored (compressed). */
  digest: string;
  /** Size of the blob as stored. */
  size: number;
  mediaType: string;
  /** sha256 of the uncompressed tar. */
  diffID: string;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PushedImage {
  /** "host/repo:tag" */
  ref: string;
  /** Manifest digest. */
  digest: string;
  manifestMediaType: string;
  configDigest: string;
  layers: PushedLayer[];
  /** manifest + config + layer blob bytes. */
  size: number;
  /** Extras beyond the agreed API: what pushIndex and content checks need. */
  repo: string;
  tag: string;
  platform: Platform;
  manifestBytes: Uint8Array;
  configBytes: Uint8Array;
}

export const MEDIA_TYPES = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

const encoder = new TextEncoder();
const CREATED = new Date(DEFAULT_MTIME * 1000).toISOString().replace(".000Z", "Z");

/** sha256 of `data` as "sha256:<hex>". */
export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function layerMediaType(format: "oci" | "docker", compression: Compression): string {
  if (format === "docker") {
    if (compression === "zstd") throw new Error("pushImage: the docker schema 2 format has no zstd layer media type; use format \"oci\"");
    return compression === "gzip" ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.dockerLayer;
  }
  return compression === "gzip" ? MEDIA_TYPES.ociLayerGzip : compression === "zstd" ? MEDIA_TYPES.ociLayerZstd : MEDIA_TYPES.ociLayer;
}

// Compressing busybox or a big random layer is the slow part of a push; the same tar is
// pushed by many tests, so keep compressed bytes per (diffID, compression).
const compressedCache = new Map<string, Uint8Array>();
const COMPRESSED_CACHE_LIMIT = 64;

function compress(tar: Uint8Array<ArrayBuffer>, diffID: string, compression: Compression): Uint8Array {
  if (compression === "none") return tar;
  const key = `${compression}:${diffID}`;
  const hit = compressedCache.get(key);
  if (hit !== undefined) return hit;
  const out = compression === "gzip" ? Bun.gzipSync(tar) : Bun.zstdCompressSync(tar);
  if (compressedCache.size >= COMPRESSED_CACHE_LIMIT) {
    const oldest = compressedCache.keys().next().value;
    if (oldest !== undefined) compressedCache.delete(oldest);
  }
  compressedCache.set(key, out);
  return out;
}

/** Splits "repo/name:tag" (tag defaults to "latest"). A port in a host part is not expected here. */
export function splitRepoTag(repoAndTag: string): { repo: string; tag: string } {
  const slash = repoAndTag.lastIndexOf("/");
  const colon = repoAndTag.lastIndexOf(":");
  if (colon > slash) return { repo: repoAndTag.slice(0, colon), tag: repoAndTag.slice(colon + 1) };
  return { repo: repoAndTag, tag: "latest" };
}

function defaultCredentials(reg: TestRegistry, auth: Credentials | undefined): Credentials | undefined {
  if (auth !== undefined) return auth;
  const r = reg as TestRegistry & { username?: unknown; password?: unknown };
  if (typeof r.username === "string" && typeof r.password === "string") return { username: r.username, password: r.password };
  return undefined;
}

/** Parses a WWW-Authenticate challenge: scheme and its key="value" parameters. */
function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(" ");
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)="([^"]*)"/g;
  for (const m of header.slice(space + 1).matchAll(re)) {
    if (m[1] !== undefined && m[2] !== undefined) params[m[1].toLowerCase()] = m[2];
  }
  return { scheme, params };
}

/**
 * Requests against one registry, with auth per repository: on a 401 it answers the
 * challenge once (Basic credentials, or a Bearer token for `repository:<repo>:pull,push`)
 * and reuses that Authorization for the rest of the session.
 */
class Session {
  private readonly authByRepo = new Map<string, string>();
  constructor(
    private readonly reg: TestRegistry,
    private readonly creds: Credentials | undefined,
  ) {}

  get baseUrl(): string {
    return this.reg.url;
  }

  async request(repo: string, method: string, pathOrUrl: string, init: { body?: Uint8Array; headers?: Record<string, string> } = {}): Promise<Response> {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : `${this.reg.url}${pathOrUrl}`;
    const send = (authz: string | undefined): Promise<Response> => {
      const headers: Record<string, string> = { ...init.headers };
      if (authz !== undefined) headers.Authorization = authz;
      return fetch(url, { method, headers, body: init.body, redirect: "manual" });
    };
    let res = await send(this.authByRepo.get(repo));
    if (res.status !== 401) return res;
    const challenge = res.headers.get("www-authenticate");
    await res.arrayBuffer();
    if (challenge === null) throw new Error(`${method} ${url}: 401 without a WWW-Authenticate challenge`);
    const authz = await this.answer(repo, challenge, `${method} ${url}`);
    this.authByRepo.set(repo, authz);
    res = await send(authz);
    if (res.status === 401) throw new Error(`${method} ${url}: still 401 after authenticating: ${await res.text()}`);
    return res;
  }

  private async answer(repo: string, challenge: string, what: string): Promise<string> {
    if (this.creds === undefined) throw new Error(`${what}: the registry wants auth (${challenge}) and no credentials were given`);
    const basic = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString("base64")}`;
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === "basic") return basic;
    if (scheme !== "bearer" || params.realm === undefined) throw new Error(`${what}: unsupported challenge ${challenge}`);
    const tokenUrl = new URL(params.realm);
    if (params.service !== undefined) tokenUrl.searchParams.set("service", params.service);
    // Ask for push on the repository and whatever else the challenge names (a cross-repo
    // mount also needs pull on the source repository).
    const scopes = new Set([`repository:${repo}:pull,push`, ...(params.scope ?? "").split(" ").filter((x) => x !== "")]);
    for (const scope of scopes) tokenUrl.searchParams.append("scope", scope);
    const res = await fetch(tokenUrl, { headers: { Authorization: basic } });
    if (!res.ok) throw new Error(`${what}: token request to ${tokenUrl.href} failed with ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === "string" ? body.token : typeof body.access_token === "string" ? body.access_token : undefined;
    if (token === undefined) throw new Error(`${what}: token response from ${tokenUrl.href} has no token`);
    return `Bearer ${token}`;
  }
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status}: ${await res.text()}`);
}

async function blobExists(s: Session, repo: string, digest: string): Promise<boolean> {
  const res = await s.request(repo, "HEAD", `/v2/${repo}/blobs/${digest}`);
  await res.arrayBuffer();
  return res.status === 200;
}

/** Monolithic upload: POST an upload session, then PUT the whole blob with ?digest=. */
async function uploadBlob(s: Session, repo: string, data: Uint8Array, digest = sha256Digest(data)): Promise<string> {
  if (await blobExists(s, repo, digest)) return digest;
  const start = await s.request(repo, "POST", `/v2/${repo}/blobs/uploads/`);
  await expectStatus(start, [202], `start upload of ${digest} to ${repo}`);
  await start.arrayBuffer();
  const location = start.headers.get("location");
  if (location === null) throw new Error(`start upload of ${digest} to ${repo}: no Location header`);
  const target = new URL(location, s.baseUrl);
  target.searchParams.set("digest", digest);
  const put = await s.request(repo, "PUT", target.href, {
    body: data,
    headers: { "Content-Type": "application/octet-stream", "Content-Length": String(data.length) },
  });
  await expectStatus(put, [201], `upload of ${digest} to ${repo}`);
  await put.arrayBuffer();
  return digest;
}

async function putManifest(s: Session, repo: string, reference: string, mediaType: string, bytes: Uint8Array): Promise<string> {
  const res = await s.request(repo, "PUT", `/v2/${repo}/manifests/${reference}`, {
    body: bytes,
    headers: { "Content-Type": mediaType },
  });
  await expectStatus(res, [201], `PUT manifest ${repo}:${reference}`);
  await res.arrayBuffer();
  const digest = sha256Digest(bytes);
  const told = res.headers.get("docker-content-digest");
  if (told !== null && told !== digest) throw new Error(`PUT manifest ${repo}:${reference}: registry says ${told}, we computed ${digest}`);
  return digest;
}

function imageConfig(spec: ImageConfigSpec | undefined, platform: Platform, diffIDs: string[]): Uint8Array {
  const config: Record<string, unknown> = {
    created: CREATED,
    architecture: platform.architecture,
    os: platform.os,
  };
  if (platform.variant !== undefined) config.variant = platform.variant;
  config.config = spec ?? {};
  config.rootfs = { type: "layers", diff_ids: diffIDs };
  config.history = diffIDs.map((_, i) => ({ created: CREATED, created_by: `crib test layer ${i}` }));
  return encoder.encode(JSON.stringify(config));
}

/** Builds an image from `opts.layers` and pushes it as `<reg.host>/<repoAndTag>`. */
export async function pushImage(reg: TestRegistry, repoAndTag: string, opts: PushImageOptions): Promise<PushedImage> {
  const format = opts.format ?? "oci";
  const compression = opts.compression ?? "gzip";
  const layerType = layerMediaType(format, compression);
  const { repo, tag } = splitRepoTag(repoAndTag);
  const platform: Platform = { os: opts.os ?? "linux", architecture: opts.architecture ?? "amd64" };
  if (opts.variant !== undefined) platform.variant = opts.variant;
  const session = new Session(reg, defaultCredentials(reg, opts.auth));

  const layers: PushedLayer[] = [];
  for (const entries of opts.layers) {
    const tar = tarBytes(entries);
    const diffID = sha256Digest(tar);
    const blob = compress(tar, diffID, compression);
    const digest = await uploadBlob(session, repo, blob);
    layers.push({ digest, size: blob.length, mediaType: layerType, diffID });
  }

  const configBytes = imageConfig(opts.config, platform, layers.map((l) => l.diffID));
  const configDigest = await uploadBlob(session, repo, configBytes);
  const manifestMediaType = format === "oci" ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType: manifestMediaType,
    config: { mediaType: format === "oci" ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig, digest: configDigest, size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestBytes = encoder.encode(JSON.stringify(manifest));
  const digest = await putManifest(session, repo, tag, manifestMediaType, manifestBytes);
  return {
    ref: `${reg.host}/${repo}:${tag}`,
    digest,
    manifestMediaType,
    configDigest,
    layers,
    size: manifestBytes.length + configBytes.length + layers.reduce((n, l) => n + l.size, 0),
    repo,
    tag,
    platform,
    manifestBytes,
    configBytes,
  };
}

/**
 * Pushes a manifest (any media type, e.g. a cosign signature manifest) and the
 * blobs it points to under `reference` (a tag or digest) in `repo`.
 */
export async function pushManifest(
  reg: TestRegistry,
  repo: string,
  reference: string,
  mediaType: string,
  manifestBytes: Uint8Array,
  blobs: Uint8Array[] = [],
  auth?: Credentials,
): Promise<string> {
  const session = new Session(reg, defaultCredentials(reg, auth));
  for (const b of blobs) await uploadBlob(session, repo, b);
  return await putManifest(session, repo, reference, mediaType, manifestBytes);
}

/** Copies a blob between repositories of the same registry (cross-repo mount, else GET+PUT). */
async function copyBlob(s: Session, fromRepo: string, toRepo: string, digest: string): Promise<void> {
  if (await blobExists(s, toRepo, digest)) return;
  const mount = await s.request(toRepo, "POST", `/v2/${toRepo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepo)}`);
  await mount.arrayBuffer();
  if (mount.status === 201) return;
  const get = await s.request(fromRepo, "GET", `/v2/${fromRepo}/blobs/${digest}`);
  await expectStatus(get, [200], `GET blob ${digest} from ${fromRepo}`);
  await uploadBlob(s, toRepo, new Uint8Array(await get.arrayBuffer()), digest);
}

/**
 * Pushes an index (OCI) or manifest list (docker) over `images`, each entry carrying
 * the image's platform. Images pushed to another repository are copied first (blobs
 * and manifest by digest), since a registry only accepts an index whose manifests it holds.
 */
export async function pushIndex(
  reg: TestRegistry,
  repoAndTag: string,
  images: PushedImage[],
  opts: { format?: "oci" | "docker"; auth?: Credentials } = {},
): Promise<{ ref: string; digest: string; mediaType: string; bytes: Uint8Array }> {
  const format = opts.format ?? "oci";
  const { repo, tag } = splitRepoTag(repoAndTag);
  const session = new Session(reg, defaultCredentials(reg, opts.auth));
  for (const img of images) {
    if (img.repo === repo) continue;
    for (const blob of [img.configDigest, ...img.layers.map((l) => l.digest)]) await copyBlob(session, img.repo, repo, blob);
    await putManifest(session, repo, img.digest, img.manifestMediaType, img.manifestBytes);
  }
  const mediaType = format === "oci" ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({
      mediaType: img.manifestMediaType,
      digest: img.digest,
      size: img.manifestBytes.length,
      platform: img.platform,
    })),
  };
  const bytes = encoder.encode(JSON.stringify(index));
  const digest = await putManifest(session, repo, tag, mediaType, bytes);
  return { ref: `${reg.host}/${repo}:${tag}`, digest, mediaType, bytes };
}

const BUSYBOX_PATH = "/usr/bin/busybox";
const BUSYBOX_APPLETS = ["sh", "ls", "cat", "echo", "sleep", "id", "env", "true", "false", "httpd", "wget", "mkdir", "touch", "head", "grep", "seq"];
let busyboxBytes: Uint8Array | undefined;

/**
 * A minimal root filesystem: /bin/busybox (busybox-static) with hardlinked applets,
 * the usual top-level dirs, and passwd/group with root, nobody, app (1000:1000) and a
 * supplementary group "extra" (2000) that lists app. `extraUsers` and `extraGroups`
 * are raw lines appended to /etc/passwd and /etc/group.
 */
export function busyboxLayer(opts: { extraUsers?: string; extraGroups?: string } = {}): TarEntry[] {
  if (busyboxBytes === undefined) {
    try {
      busyboxBytes = new Uint8Array(readFileSync(BUSYBOX_PATH));
    } catch (err) {
      throw new Error(`busyboxLayer: cannot read ${BUSYBOX_PATH} (install busybox-static): ${String(err)}`);
    }
  }
  const withNewline = (s: string | undefined): string => (s === undefined || s === "" ? "" : s.endsWith("\n") ? s : `${s}\n`);
  const passwd =
    "root:x:0:0:root:/root:/bin/sh\n" +
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
    "app:x:1000:1000:app:/home/app:/bin/sh\n" +
    withNewline(opts.extraUsers);
  const group = "root:x:0:\n" + "nobody:x:65534:\n" + "app:x:1000:\n" + "extra:x:2000:app\n" + withNewline(opts.extraGroups);
  return [
    { type: "dir", path: "bin/" },
    { type: "file", path: "bin/busybox", data: busyboxBytes, mode: 0o755 },
    ...BUSYBOX_APPLETS.map((a): TarEntry => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" })),
    { type: "dir", path: "dev/" },
    { type: "dir", path: "etc/" },
    { type: "file", path: "etc/passwd", data: passwd },
    { type: "file", path: "etc/group", data: group },
    { type: "dir", path: "home/" },
    { type: "dir", path: "home/app/", uid: 1000, gid: 1000 },
    { type: "dir", path: "proc/", mode: 0o555 },
    { type: "dir", path: "root/", mode: 0o700 },
    { type: "dir", path: "sys/", mode: 0o555 },
    { type: "dir", path: "tmp/", mode: 0o1777 },
    { type: "dir", path: "var/" },
  ];
}

/** A seeded xorshift128 stream of 32-bit words: same seed, same bytes. */
function fillRandom(out: Uint8Array, state: Uint32Array): void {
  const words = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
  let [x, y, z, w] = [state[0] ?? 1, state[1] ?? 2, state[2] ?? 3, state[3] ?? 4];
  for (let i = 0; i < words.length; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    words[i] = w;
  }
  for (let i = words.length * 4; i < out.length; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    out[i] = w & 0xff;
  }
  state.set([x, y, z, w]);
}

const RANDOM_FILE_SIZE = 4 * 1024 * 1024;

/** `sizeBytes` of incompressible data in files of up to 4 MiB under random-<seed>/. */
export function randomLayer(sizeBytes: number, seed: number): TarEntry[] {
  // splitmix-style seeding so nearby seeds give unrelated streams; xorshift needs a non-zero state.
  const state = new Uint32Array(4);
  let s = (seed >>> 0) ^ 0x9e3779b9;
  for (let i = 0; i < 4; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    state[i] = (t ^ (t >>> 14)) >>> 0 || 1;
  }
  const dir = `random-${seed}/`;
  const entries: TarEntry[] = [{ type: "dir", path: dir }];
  let left = Math.max(0, Math.floor(sizeBytes));
  for (let i = 0; left > 0; i++) {
    const n = Math.min(left, RANDOM_FILE_SIZE);
    // A fresh buffer aligned for the Uint32Array view.
    const data = new Uint8Array(new ArrayBuffer(n));
    fillRandom(data, state);
    entries.push({ type: "file", path: `${dir}${String(i).padStart(5, "0")}.bin`, data });
    left -= n;
  }
  return entries;
}
