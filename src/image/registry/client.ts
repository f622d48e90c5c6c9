// The OCI distribution client: resolve a reference to a platform manifest,
// and stream blobs. Endpoints come from the config's `registries` section
// (mirrors first, then the registry itself; see hosts.ts); any failure at a
// mirror falls through to the next endpoint. Every error names the registry
// host, the repository, the tag or digest and the HTTP status.
import { CribError, errorMessage, failedPrecondition, notFound, permissionDenied, registryUnavailable, resourceExhausted, unavailable } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import { digestOf, parseDigest } from "../digest.ts";
import { MAX_MANIFEST_BYTES, parseManifest, selectPlatform, type Descriptor, type ImageIndex, type ImageManifest, type ParsedManifest, type Platform } from "../manifest.ts";
import { MANIFEST_ACCEPT } from "../media_types.ts";
import { pullReference, repoName, type ImageRef } from "../reference.ts";
import { Authorizer, pullScope, toCredentials, type AuthConfig, type Credentials } from "./auth.ts";
import { endpointsFor, type Endpoint, type RegistriesConfig } from "./hosts.ts";
import { HttpTransport, NetworkError, readBody, type HttpResponse, type TransportOptions } from "./transport.ts";

export type { AuthConfig } from "./auth.ts";

const logger = log.with({ component: "registry" });

/** How deep an index may nest other indexes. */
const MAX_INDEX_DEPTH = 3;
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface RegistryClientOptions extends TransportOptions {
  registries: RegistriesConfig;
}

export interface RequestOptions {
  /** Credentials for this pull (the CRI AuthConfig); they win over the config file's for the image's own registry. */
  auth?: AuthConfig;
  signal?: AbortSignal;
}

export interface ResolveResult {
  /** Digest of the platform manifest (the image's "repo digest" when there is no index). */
  manifestDigest: string;
  manifest: ImageManifest;
  manifestBytes: Uint8Array;
  /** The index the manifest was picked from, when the reference named one. */
  index?: { digest: string; bytes: Uint8Array; manifest: ImageIndex };
  /** The host[:port] that served it. */
  endpoint: string;
}

export interface BlobResponse {
  /** The blob's bytes from `offset` on. */
  body: AsyncIterable<Uint8Array>;
  /** Where the body starts: the requested offset, or 0 when the server ignored the Range request. */
  offset: number;
  endpoint: string;
}

interface Fetched {
  digest: string;
  bytes: Uint8Array;
  parsed: ParsedManifest;
}

export class RegistryClient {
  private readonly transport: HttpTransport;
  private readonly authorizer: Authorizer;
  /** Per repository, the endpoint that last served it: blob fetches start there. */
  private readonly lastGood = new Map<string, string>();

  constructor(private readonly opts: RegistryClientOptions) {
    this.transport = new HttpTransport({ userAgent: "crib", ...opts });
    this.authorizer = new Authorizer(this.transport);
  }

  /** Tokens fetched so far from token servers. */
  get tokenRequests(): number {
    return this.authorizer.tokenRequests;
  }

  /** The endpoints tried for a registry, in order. */
  endpoints(registry: string): Endpoint[] {
    return endpointsFor(registry, this.opts.registries);
  }

  /**
   * Resolve a reference to the manifest for `platform`: fetch the tag or digest,
   * verify the bytes' digest (against the reference's digest and the
   * Docker-Content-Digest header), and follow an index to the platform's manifest.
   */
  async resolve(ref: ImageRef, platform: Platform, opts: RequestOptions = {}): Promise<ResolveResult> {
    return this.acrossEndpoints(ref, false, (ep) => this.resolveAt(ep, ref, platform, opts), opts.signal);
  }

  /**
   * GET a blob from `offset` (HTTP Range). When the server answers 200 instead
   * of 206, the body starts at 0 and `offset` says so. Redirects to blob
   * storage are followed.
   */
  async fetchBlob(ref: ImageRef, descriptor: Descriptor, opts: RequestOptions & { offset?: number } = {}): Promise<BlobResponse> {
    parseDigest(descriptor.digest);
    return this.acrossEndpoints(ref, true, (ep) => this.fetchBlobAt(ep, ref, descriptor, opts.offset ?? 0, opts), opts.signal);
  }

  /**
   * A small document by tag or digest (a signature manifest), through the
   * same endpoints, mirrors and auth as the image; its bytes are checked
   * against the digest when one is named, but not parsed as an image.
   * Undefined when no endpoint has it.
   */
  async fetchDocument(ref: ImageRef, reference: string, opts: RequestOptions = {}): Promise<{ digest: string; bytes: Uint8Array; endpoint: string } | undefined> {
    const expected = reference.startsWith("sha256:") || reference.startsWith("sha512:") ? reference : undefined;
    return this.lookup(ref, async (ep) => {
      const r = await this.fetchManifestBytes(ep, ref, reference, expected, undefined, opts);
      return { digest: r.digest, bytes: r.bytes, endpoint: ep.host };
    }, opts.signal);
  }

  /** A small blob read into memory (at most `limit` bytes) and checked against its digest. */
  async fetchSmallBlob(ref: ImageRef, descriptor: Descriptor, limit: number, opts: RequestOptions = {}): Promise<Uint8Array> {
    const what = `blob ${descriptor.digest} of ${repoName(ref)}`;
    if (descriptor.size > limit) throw resourceExhausted(`${what} is ${descriptor.size} bytes by its descriptor, over the ${limit} byte limit`);
    const want = parseDigest(descriptor.digest);
    return this.acrossEndpoints(ref, true, async (ep) => {
      const res = await this.fetchBlobAt(ep, ref, descriptor, 0, opts);
      const chunks: Uint8Array[] = [];
      let n = 0;
      for await (const c of res.body) {
        n += c.length;
        if (n > descriptor.size) throw failedPrecondition(`${what}: the registry sent more than its ${descriptor.size} bytes`);
        chunks.push(c);
      }
      const bytes = Buffer.concat(chunks);
      const got = digestOf(bytes, want.algorithm);
      if (got !== descriptor.digest) throw failedPrecondition(`digest mismatch: ${what} has content with digest ${got}; the registry or something between sent wrong bytes`);
      return { bytes: new Uint8Array(bytes), endpoint: ep.host };
    }, opts.signal).then((r) => r.bytes);
  }

  /**
   * The OCI 1.1 referrers of a manifest (GET /v2/<name>/referrers/<digest>),
   * filtered by artifact type. Undefined when no endpoint offers the API
   * (registries before OCI 1.1 answer 404).
   */
  async referrers(ref: ImageRef, digest: string, artifactType: string, opts: RequestOptions = {}): Promise<Descriptor[] | undefined> {
    parseDigest(digest);
    const found = await this.lookup(ref, async (ep) => {
      const what = `referrers of ${ep.host}/${ref.path}@${digest}`;
      const res = await this.get(ep, ref, `referrers/${digest}?artifactType=${encodeURIComponent(artifactType)}`, { accept: "application/vnd.oci.image.index.v1+json" }, what, opts);
      if (res.status !== 200) {
        await res.body.dump().catch(() => {});
        throw notFound(`${what}: HTTP ${res.status}`);
      }
      const bytes = await readBody(res, MAX_MANIFEST_BYTES, what);
      let doc: unknown;
      try {
        doc = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        throw notFound(`${what}: the answer is not JSON`);
      }
      const list = (doc as { manifests?: unknown }).manifests;
      if (!Array.isArray(list)) throw notFound(`${what}: the answer is not an index`);
      const out = list.filter((d): d is Descriptor => typeof d === "object" && d !== null && typeof (d as Descriptor).digest === "string" && typeof (d as Descriptor).size === "number");
      return { endpoint: ep.host, list: out.filter((d) => d.artifactType === undefined || d.artifactType === artifactType) };
    }, opts.signal);
    return found?.list;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  // ---- endpoints ----

  private async acrossEndpoints<T extends { endpoint: string }>(
    ref: ImageRef,
    preferLastGood: boolean,
    fn: (ep: Endpoint) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    let eps = this.endpoints(ref.domain);
    const repo = repoName(ref);
    const good = this.lastGood.get(repo);
    if (preferLastGood && good) eps = [...eps.filter((e) => e.base === good), ...eps.filter((e) => e.base !== good)];
    const failures: string[] = [];
    for (let i = 0; i < eps.length; i++) {
      const ep = eps[i]!;
      try {
        const r = await fn(ep);
        this.lastGood.set(repo, ep.base);
        return r;
      } catch (e) {
        if (signal?.aborted) throw e;
        if (i === eps.length - 1) {
          if (failures.length === 0 || !(e instanceof CribError)) throw e;
          throw new CribError(e.kind, `${e.message} (also tried: ${failures.join("; ")})`, { cause: e });
        }
        logger.warn("registry endpoint failed, trying the next", { endpoint: ep.host, mirror: ep.mirror, repo, error: errorMessage(e) });
        failures.push(`${ep.host}: ${errorMessage(e)}`);
      }
    }
    throw unavailable(`no registry endpoint for ${repo}`);
  }

  /**
   * Look something up that may be absent (a signature): the first endpoint
   * that has it wins. Undefined when an endpoint answered "not there" and none
   * had it, even if others could not be reached (a mirror may hold the
   * image's signatures while the upstream is out of reach); the error when no
   * endpoint answered at all.
   */
  private async lookup<T extends { endpoint: string }>(ref: ImageRef, fn: (ep: Endpoint) => Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
    let absent = false;
    let lastError: unknown;
    for (const ep of this.endpoints(ref.domain)) {
      try {
        return await fn(ep);
      } catch (e) {
        if (signal?.aborted) throw e;
        if (e instanceof CribError && e.kind === "not_found") absent = true;
        else {
          lastError = e;
          logger.debug("registry endpoint failed for a lookup", { endpoint: ep.host, repo: repoName(ref), error: errorMessage(e) });
        }
      }
    }
    if (absent || lastError === undefined) return undefined;
    throw lastError;
  }

  private credentials(ep: Endpoint, opts: RequestOptions): Credentials | undefined {
    // The pull's own credentials belong to the image's registry; a mirror gets only its configured ones.
    if (!ep.mirror) {
      const fromRequest = toCredentials(opts.auth);
      if (fromRequest) return fromRequest;
    }
    return toCredentials(ep.config?.auth);
  }

  /** One authenticated GET: anonymous or with the cached authorization, re-authenticating once on 401. */
  private async get(ep: Endpoint, ref: ImageRef, path: string, headers: Record<string, string>, what: string, opts: RequestOptions): Promise<HttpResponse> {
    const url = new URL(`${ep.base}/${ref.path}/${path}`);
    const scope = pullScope(ref.path);
    const creds = this.credentials(ep, opts);
    const send = async (authorization: string | undefined) => {
      const h = { ...headers };
      if (authorization) h.authorization = authorization;
      try {
        return await this.transport.send({ method: "GET", url, headers: h, signal: opts.signal, tls: ep.config?.tls, what });
      } catch (e) {
        if (e instanceof NetworkError) throw registryUnavailable(`cannot reach registry ${ep.host} for ${what}: ${e.message}`, e);
        throw e;
      }
    };
    let res = await send(await this.authorizer.header(ep, scope, creds, opts.signal));
    if (res.status === 401) {
      const challenge = res.headers["www-authenticate"];
      const body = await readBody(res, MAX_ERROR_BODY_BYTES, "error body").catch(() => new Uint8Array());
      const retry = await this.authorizer.onUnauthorized(ep, scope, creds, challenge, opts.signal);
      if (retry === undefined) return { ...res, body: replayBody(body) };
      res = await send(retry);
    }
    return res;
  }

  /** Turn a non-success answer into a CribError naming host, repository, object and status. */
  private async httpError(res: HttpResponse, ep: Endpoint, ref: ImageRef, object: "manifest" | "blob", id: string, opts: RequestOptions): Promise<CribError> {
    const detail = await registryErrorDetail(res);
    const where = `${ep.host}/${ref.path}${object === "manifest" ? (id.includes(":") && id.startsWith("sha") ? `@${id}` : `:${id}`) : ` blob ${id}`}`;
    const suffix = `(HTTP ${res.status}${detail ? `: ${detail}` : ""})`;
    if (res.status === 401 || res.status === 403) {
      const hint = this.credentials(ep, opts) !== undefined ? "check the pull credentials" : "no credentials were given for it";
      return permissionDenied(`unauthorized: ${ep.host} refused access to ${where} ${suffix}; ${hint}`);
    }
    if (res.status === 404) return notFound(`${object} unknown: ${where} not found ${suffix}`);
    return registryUnavailable(`registry ${ep.host} failed for ${where} ${suffix}`);
  }

  // ---- manifests ----

  private async resolveAt(ep: Endpoint, ref: ImageRef, platform: Platform, opts: RequestOptions): Promise<ResolveResult> {
    const top = await this.fetchManifest(ep, ref, pullReference(ref), ref.digest, undefined, opts);
    if (top.parsed.kind === "manifest") {
      return { manifestDigest: top.digest, manifest: top.parsed, manifestBytes: top.bytes, endpoint: ep.host };
    }
    let current: Fetched = top;
    for (let depth = 0; depth < MAX_INDEX_DEPTH; depth++) {
      const index = current.parsed as ImageIndex;
      const what = `index ${ep.host}/${ref.path}@${current.digest}`;
      const chosen = selectPlatform(index, platform, what);
      const child = await this.fetchManifest(ep, ref, chosen.digest, chosen.digest, chosen.size, opts);
      if (child.parsed.kind === "manifest") {
        return {
          manifestDigest: child.digest,
          manifest: child.parsed,
          manifestBytes: child.bytes,
          index: { digest: top.digest, bytes: top.bytes, manifest: top.parsed as ImageIndex },
          endpoint: ep.host,
        };
      }
      current = child;
    }
    throw failedPrecondition(`index ${ep.host}/${ref.path}@${top.digest} nests indexes deeper than ${MAX_INDEX_DEPTH}`);
  }

  private async fetchManifest(
    ep: Endpoint,
    ref: ImageRef,
    reference: string,
    expectedDigest: string | undefined,
    expectedSize: number | undefined,
    opts: RequestOptions,
  ): Promise<Fetched> {
    const { digest, bytes, contentType, what } = await this.fetchManifestBytes(ep, ref, reference, expectedDigest, expectedSize, opts);
    const parsed = parseManifest(bytes, { contentType, what });
    return { digest, bytes, parsed };
  }

  /** GET a manifest's bytes, checked against the digest asked for and the one the registry announces. */
  private async fetchManifestBytes(
    ep: Endpoint,
    ref: ImageRef,
    reference: string,
    expectedDigest: string | undefined,
    expectedSize: number | undefined,
    opts: RequestOptions,
  ): Promise<{ digest: string; bytes: Uint8Array; contentType: string | undefined; what: string }> {
    const id = reference.startsWith("sha256:") || reference.startsWith("sha512:") ? `@${reference}` : `:${reference}`;
    const what = `manifest ${ep.host}/${ref.path}${id}`;
    if (expectedSize !== undefined && expectedSize > MAX_MANIFEST_BYTES) {
      throw resourceExhausted(`${what} is ${expectedSize} bytes by its descriptor, over the ${MAX_MANIFEST_BYTES} byte limit`);
    }
    const res = await this.get(ep, ref, `manifests/${reference}`, { accept: MANIFEST_ACCEPT }, what, opts);
    if (res.status !== 200) throw await this.httpError(res, ep, ref, "manifest", reference, opts);
    const bytes = await readBody(res, MAX_MANIFEST_BYTES, what);
    if (expectedSize !== undefined && bytes.length !== expectedSize) {
      throw failedPrecondition(`${what}: got ${bytes.length} bytes but its descriptor says ${expectedSize}`);
    }
    let digest = digestOf(bytes);
    if (expectedDigest !== undefined) {
      const want = parseDigest(expectedDigest);
      const got = digestOf(bytes, want.algorithm);
      if (got !== expectedDigest) {
        throw failedPrecondition(`digest mismatch: ${what} has content with digest ${got}; the registry or something between sent wrong bytes`);
      }
      digest = expectedDigest;
    }
    const announced = res.headers["docker-content-digest"];
    if (announced !== undefined) {
      let header;
      try {
        header = parseDigest(announced);
      } catch {
        header = undefined;
        logger.debug("ignoring invalid Docker-Content-Digest", { what });
      }
      if (header) {
        const got = digestOf(bytes, header.algorithm);
        if (got !== header.text) {
          throw failedPrecondition(`digest mismatch: ${what} has content with digest ${got}, but the registry announced ${header.text}`);
        }
        if (expectedDigest === undefined) digest = header.text;
      }
    }
    return { digest, bytes, contentType: res.headers["content-type"], what };
  }

  // ---- blobs ----

  private async fetchBlobAt(ep: Endpoint, ref: ImageRef, d: Descriptor, offset: number, opts: RequestOptions): Promise<BlobResponse> {
    const what = `blob ${d.digest} of ${ep.host}/${ref.path}`;
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    let res = await this.get(ep, ref, `blobs/${d.digest}`, headers, what, opts);
    if (res.status === 416 && offset > 0) {
      // The partial data we hold does not fit this blob: start over.
      await res.body.dump().catch(() => {});
      res = await this.get(ep, ref, `blobs/${d.digest}`, {}, what, opts);
      offset = 0;
    }
    let start = 0;
    if (res.status === 206) {
      const range = /^bytes (\d+)-(\d+)?\/(\d+|\*)$/.exec(res.headers["content-range"] ?? "");
      start = range ? Number(range[1]) : Number.NaN;
      if (start !== offset) {
        await res.body.dump().catch(() => {});
        throw registryUnavailable(`${what}: asked for bytes from ${offset} but the registry sent a range starting at ${Number.isNaN(start) ? "an unknown place" : start}`);
      }
    } else if (res.status === 200) {
      if (offset > 0) logger.info("registry ignored the Range request; restarting the blob from 0", { blob: d.digest, endpoint: ep.host, offset });
    } else {
      throw await this.httpError(res, ep, ref, "blob", d.digest, opts);
    }
    const length = Number(res.headers["content-length"]);
    if (res.headers["content-length"] !== undefined && Number.isFinite(length) && length !== d.size - start) {
      await res.body.dump({ limit: 0 }).catch(() => {});
      throw failedPrecondition(`${what}: the registry sent ${length} bytes from offset ${start}, but the blob's size is ${d.size}`);
    }
    return { body: res.body, offset: start, endpoint: ep.host };
  }
}

/** A body already read, served again (for an error answer whose words we kept). */
function replayBody(bytes: Uint8Array): HttpResponse["body"] {
  const it = (async function* (): AsyncGenerator<Uint8Array> {
    if (bytes.length > 0) yield bytes;
  })();
  return Object.assign(it, { dump: async () => {} });
}

/** The registry's own error words ({"errors":[{"code","message"}]}), short and printable. */
async function registryErrorDetail(res: HttpResponse): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await readBody(res, MAX_ERROR_BODY_BYTES, "error body");
  } catch {
    return "";
  }
  try {
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = doc.errors?.[0];
    if (first) {
      const text = [first.code, first.message].filter((x) => typeof x === "string" && x !== "").join(" ");
      return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);
    }
  } catch {
    // not JSON: no detail
  }
  return "";
}
