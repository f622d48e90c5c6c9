// The image component: pulls (registry -> blob store -> unpacked layers ->
// metadata), lookups, removal with garbage collection, and usage figures.
import type { Database } from "bun:sqlite";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.ts";
import { parseDuration } from "../config/schema.ts";
import { CribError, errorMessage, failedPrecondition, invalidArgument, notFound } from "../errors.ts";
import { log } from "../log/logger.ts";
import { countPulledBlob } from "../metrics/crib_metrics.ts";
import { LayerStore } from "../storage/layer_store.ts";
import { Limiter, SingleFlight } from "../util/limiter.ts";
import { BlobStore } from "./blob_store.ts";
import { chainIDs } from "./chain_id.ts";
import { ImageStore, type ImageRecord, type LayerRecord, type LayerRef } from "./image_store.ts";
import { applyLayer } from "./layer/apply.ts";
import { LayerTee } from "./layer_tee.ts";
import { MAX_CONFIG_BYTES, parseImageConfig, type Descriptor, type ImageConfig, type ImageManifest } from "./manifest.ts";
import { layerCompression } from "./media_types.ts";
import { PullProgressHub, type PullTracker } from "./pull_progress.ts";
import { looksLikeImageId, parseReference, refString, repoDigest, repoName, repoTag, type ImageRef } from "./reference.ts";
import { RegistryClient, type AuthConfig, type ResolveResult } from "./registry/client.ts";
import { compilePolicy, describeRule, type Policy, type Rule } from "./trust/keys.ts";
import { fetchSignatures, type FoundSignature } from "./trust/signatures.ts";
import { evaluate, ImageTrust, type Verdict } from "./trust/verifier.ts";

const logger = log.with({ component: "image" });

export interface PullOptions {
  auth?: AuthConfig;
  signal?: AbortSignal;
}

/** What `crib ctl verify` reports: the rule that applies and whether the image passes it. */
export interface VerifyOutcome {
  image: string;
  digests: string[];
  rule: Rule;
  verdict?: Verdict;
  /** Why the image is refused (no verdict). */
  refusal?: string;
  signaturesFound: number;
}

/** An image whose blobs are already in the blob store (an archive load), to unpack and record. */
export interface ImportInput {
  /** The platform manifest; its blob, its config and its layers are in the store. */
  manifestDigest: string;
  manifest: ImageManifest;
  /** The index the manifest was picked from, if any (its blob is in the store too). */
  indexDigest?: string;
  /** Names to record: "repo:tag" and "repo@digest". */
  names: string[];
  /** Where the image came from, for messages ("archive /tmp/x.tar"). */
  source: string;
}

export class ImageService {
  readonly blobs: BlobStore;
  readonly layers: LayerStore;
  readonly store: ImageStore;
  /** Replaced by applySettings (SIGHUP). */
  registry: RegistryClient;
  readonly progress = new PullProgressHub();
  private downloads: Limiter;
  /** Unpacking is CPU-bound (decompression): one per core is plenty. */
  private readonly unpackSlots = new Limiter(Math.max(1, Math.min(4, navigator.hardwareConcurrency)));
  private readonly pulls = new SingleFlight<ImageRecord>();
  private readonly unpacks = new SingleFlight<LayerRecord>();
  /** Parsed configs by image id (see imageConfig); dropped with the image. */
  private readonly configs = new Map<string, ImageConfig>();
  /** Which container uses an image, if any (set by the container component). */
  usedBy: (imageId: string) => string | undefined = () => undefined;
  /** Blobs and layers of pulls in progress: garbage collection must not take them. */
  private readonly inFlight = new Map<string, number>();
  /** The signature policy in force (replaced by applySettings). */
  readonly trust: ImageTrust;

  constructor(private readonly config: Config, db: Database, policy: Policy = compilePolicy(config.policy)) {
    this.trust = new ImageTrust(policy);
    this.blobs = new BlobStore(config.root);
    this.layers = new LayerStore(config.root, () => this.config.pull.syncFs);
    this.store = new ImageStore(db);
    this.registry = new RegistryClient({ registries: config.registries });
    this.downloads = new Limiter(config.pull.maxConcurrentDownloads);
  }

  /** Start-up: finish what a crash left half done, so nothing unseen stays on disk. */
  async init(): Promise<void> {
    await this.layers.init();
    const { partial } = await this.layers.listOnDisk();
    for (const p of partial) await this.layers.remove(`sha256:${p.replace(/\..*$/, "")}`);
    // Layer rows whose directory is gone are forgotten; the next pull unpacks again.
    for (const l of this.store.layers()) {
      try {
        await stat(this.layers.path(l.chainID));
      } catch {
        logger.warn("layer directory missing; it will be unpacked again on the next pull", { chainID: l.chainID });
        this.store.removeLayer(l.chainID);
      }
    }
    this.applyConfigPins();
    const removed = await this.gc();
    // Partial downloads are kept for a day so an interrupted pull resumes.
    const ingest = await this.blobs.gcIngest(24 * 3600 * 1000);
    if (removed.blobs + removed.layers + ingest > 0) logger.info("cleaned the store at start-up", { ...removed, ingestFiles: ingest });
  }

  // ---- pulls ----

  async pull(text: string, opts: PullOptions = {}): Promise<ImageRecord> {
    const ref = parseReference(text);
    const key = refString(ref);
    try {
      return await this.pulls.run(key, () => this.doPull(ref, key, opts));
    } catch (e) {
      // A full disk (or a layer over its limits): give back what this pull stored, so
      // the node is not left full; blobs of pulls still running are held (inFlight).
      if (e instanceof CribError && e.kind === "resource_exhausted") {
        const freed = await this.gc().catch(() => ({ blobs: 0, layers: 0 }));
        const partials = await this.blobs.dropPartials().catch(() => 0);
        logger.warn("pull failed for lack of space or over a limit; removed what it had stored", { image: key, error: e.message, ...freed, partials });
      }
      throw e;
    }
  }

  private async doPull(ref: ImageRef, key: string, opts: PullOptions): Promise<ImageRecord> {
    const tracker = this.progress.start(key);
    const held: string[] = [];
    const hold = (k: string) => {
      held.push(k);
      this.inFlight.set(k, (this.inFlight.get(k) ?? 0) + 1);
    };
    const started = performance.now();
    try {
      // A rejected scope is refused before its registry is even asked.
      const rule = this.trust.ruleFor(ref);
      if (rule.type === "reject") evaluate(rule, ref, [], []);
      const resolved = await this.registry.resolve(ref, this.config.pull.platform, { auth: opts.auth, signal: opts.signal });
      const topDigest = resolved.index?.digest ?? resolved.manifestDigest;
      // Before anything of the image reaches the disk.
      const signatures = await this.verifyPull(ref, key, resolved, tracker, opts);
      hold(resolved.manifestDigest);
      await this.blobs.writeBytes(resolved.manifestDigest, resolved.manifestBytes);
      if (resolved.index) {
        hold(resolved.index.digest);
        await this.blobs.writeBytes(resolved.index.digest, resolved.index.bytes);
      }
      const manifest = resolved.manifest;
      const resolvedAt = performance.now();
      hold(manifest.config.digest);
      await this.fetchBlob(ref, manifest.config, opts);
      const config = parseImageConfig(await this.blobs.readBytes(manifest.config.digest, MAX_CONFIG_BYTES), {
        layers: manifest.layers.length,
        what: `config ${manifest.config.digest} of ${key}`,
      });
      const diffIDs = config.rootfs.diff_ids;
      const chains = chainIDs(diffIDs);
      for (const c of chains) hold(c);
      for (const l of manifest.layers) hold(l.digest);
      for (const l of manifest.layers) tracker.layer(l.digest, l.size, "waiting");

      const configAt = performance.now();
      const work = manifest.layers.map((desc, i) => this.ensureLayer(ref, key, desc, diffIDs[i]!, chains[i]!, i > 0 ? chains[i - 1]! : null, tracker, opts));
      let layerRecords: LayerRecord[];
      try {
        layerRecords = await Promise.all(work);
      } catch (e) {
        // Out of space: let the other layers end first (on a full disk they soon do), so
        // none of them stores a blob after the clean-up that gives the space back.
        if (e instanceof CribError && e.kind === "resource_exhausted") await Promise.allSettled(work);
        throw e;
      }
      const layersAt = performance.now();
      const layers: LayerRef[] = manifest.layers.map((d, i) => ({ digest: d.digest, size: d.size, mediaType: d.mediaType, diffID: diffIDs[i]!, chainID: chains[i]! }));
      const size = resolved.manifestBytes.length + manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
      const names = [repoTag(ref), repoDigest(ref, topDigest)].filter((n): n is string => n !== undefined);
      const blobs = [resolved.manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest), ...(resolved.index ? [resolved.index.digest] : [])];
      const record = this.store.put(
        { id: manifest.config.digest, manifestDigest: resolved.manifestDigest, topDigest, configMediaType: manifest.config.mediaType, size, layers, blobs },
        names,
        this.isConfigPinned(names),
        layerRecords,
      );
      if (signatures.length > 0) {
        this.store.putSignatures(resolved.manifestDigest, signatures);
        this.trust.forget();
      }
      const done = performance.now();
      // Where the time went: resolve (manifest, signatures), config, layers (download, verify, unpack, flush), commit (records).
      const phases = { resolveMs: Math.round(resolvedAt - started), configMs: Math.round(configAt - resolvedAt), layersMs: Math.round(layersAt - configAt), commitMs: Math.round(done - layersAt) };
      logger.info("pulled image", { image: key, id: record.id, layers: layers.length, bytes: size, ms: Math.round(done - started), ...phases });
      tracker.finish();
      // After the reply: a full collection takes ~30 ms, which the caller need not wait for.
      if (!this.pulls.busy()) setTimeout(releaseGarbage, 0);
      return record;
    } catch (e) {
      tracker.finish(errorMessage(e));
      throw e;
    } finally {
      for (const k of held) {
        const n = (this.inFlight.get(k) ?? 1) - 1;
        if (n <= 0) this.inFlight.delete(k);
        else this.inFlight.set(k, n);
      }
    }
  }

  /**
   * Check the resolved image against the signature policy (its manifest digest
   * is verified by now; no layer has been fetched). Returns the signatures
   * found, to keep with the image; throws signature_invalid when refused.
   */
  private async verifyPull(ref: ImageRef, key: string, resolved: ResolveResult, tracker: PullTracker, opts: PullOptions): Promise<FoundSignature[]> {
    const rule = this.trust.ruleFor(ref);
    if (rule.type === "accept" && this.trust.acceptsAll) return [];
    tracker.verification(`checking against ${describeRule(rule)}`);
    const j = await this.judge(ref, resolved, opts);
    if (j.refusal) {
      logger.warn("pull refused by the signature policy", { image: key, digest: j.digests[0], rule: j.rule.scope, reason: j.refusal.message });
      throw j.refusal;
    }
    tracker.verification(j.verdict!.summary);
    logger.info("image passed the signature policy", { image: key, digest: j.digests[0], rule: j.rule.scope, type: j.rule.type, keys: j.verdict!.matched.map((m) => m.key) });
    return j.found;
  }

  /** The policy's verdict on a resolved image (signatures fetched through the same registry client), or why it refuses it. */
  private async judge(ref: ImageRef, resolved: ResolveResult, opts: PullOptions): Promise<{ rule: Rule; digests: string[]; found: FoundSignature[]; verdict?: Verdict; refusal?: CribError }> {
    const rule = this.trust.ruleFor(ref);
    const digests = [...new Set([resolved.index?.digest ?? resolved.manifestDigest, resolved.manifestDigest])];
    const { found, looked } = rule.type === "signedBy" ? await fetchSignatures(this.registry, ref, digests, { auth: opts.auth, signal: opts.signal }) : { found: [], looked: [] };
    try {
      return { rule, digests, found, verdict: evaluate(rule, ref, digests, found, looked) };
    } catch (e) {
      if (!(e instanceof CribError && e.kind === "signature_invalid")) throw e;
      return { rule, digests, found, refusal: e };
    }
  }

  /**
   * crib ctl verify: resolve the image on its registry and check it against the
   * policy, as a pull would, without storing anything.
   */
  async verify(text: string, opts: PullOptions = {}): Promise<VerifyOutcome> {
    const ref = parseReference(text);
    const resolved = await this.registry.resolve(ref, this.config.pull.platform, { auth: opts.auth, signal: opts.signal });
    const j = await this.judge(ref, resolved, opts);
    return { image: refString(ref), digests: j.digests, rule: j.rule, verdict: j.verdict, refusal: j.refusal?.message, signaturesFound: j.found.length };
  }

  /**
   * CreateContainer: an image on the node runs only if the current policy lets
   * it through under one of its names, judged from the signatures stored when
   * it was pulled (no registry call; verdicts are cached). Refusals are
   * failed_precondition naming the rule.
   */
  assertAllowed(image: ImageRecord): void {
    if (this.trust.acceptsAll) return;
    const digests = [...new Set([image.topDigest, image.manifestDigest])];
    const refs: ImageRef[] = [];
    for (const n of image.names) {
      try {
        refs.push(parseReference(n));
      } catch {
        // a name crib could not have recorded; skip it
      }
    }
    if (refs.length === 0) {
      const rule = this.trust.policy.default;
      if (rule.type === "accept") return;
      throw failedPrecondition(`image ${image.id} has no name, so only the default rule applies, and ${describeRule(rule)} refuses it`);
    }
    let refusal: unknown;
    for (const ref of refs) {
      try {
        this.trust.checkStored(ref, digests, () => this.store.signatures(image.manifestDigest));
        return;
      } catch (e) {
        refusal ??= e;
      }
    }
    throw failedPrecondition(
      `image ${refString(refs[0]!)} (${image.id}) is on the node but the current signature policy refuses it: ${errorMessage(refusal)}; ` +
        "it was accepted when pulled: pull it again once it is signed as the policy wants, or change the policy",
    );
  }

  private progressOpts() {
    return { progressTimeoutMs: parseDuration(this.config.pull.progressTimeout), minBytesPerSecond: this.config.pull.minBytesPerSecond };
  }

  /** Download a blob once (bounded concurrency across every pull). */
  private fetchBlob(ref: ImageRef, desc: Descriptor, opts: PullOptions, onProgress?: (bytes: number) => void, tee?: LayerTee) {
    return this.downloads.run(() =>
      this.blobs.ensure(
        desc,
        async (offset, signal) => {
          const src = await this.registry.fetchBlob(ref, desc, { offset, auth: opts.auth, signal });
          return tee ? tee.wrap(src, offset) : src;
        },
        { ...this.progressOpts(), signal: opts.signal, onProgress: onProgress ? (b) => onProgress(b) : undefined },
      ).then(countPulledBlob), // bytes really downloaded, for /metrics
    );
  }

  /** Make sure the layer's blob is stored and the layer unpacked under its chain ID. */
  private async ensureLayer(ref: ImageRef, key: string, desc: Descriptor, diffID: string, chainID: string, parent: string | null, tracker: PullTracker, opts: PullOptions): Promise<LayerRecord> {
    const existing = this.store.layer(chainID);
    if (existing && (await this.blobs.has(desc.digest))) {
      tracker.update(desc.digest, { phase: "cached", downloaded: desc.size });
      return existing;
    }
    tracker.update(desc.digest, { phase: "downloading" });
    const started = performance.now();
    const onProgress = (downloaded: number) => tracker.update(desc.digest, { downloaded });
    let rec: LayerRecord;
    if (existing) {
      await this.fetchBlob(ref, desc, opts, onProgress);
      rec = existing;
    } else {
      const unpackingFromBlob = () => tracker.update(desc.digest, { phase: "unpacking" });
      rec = await this.unpacks.run(chainID, () => this.downloadAndUnpack(ref, key, desc, diffID, chainID, parent, opts, onProgress, unpackingFromBlob));
    }
    // Another pull may have unpacked the chain from a differently compressed blob.
    if (!(await this.blobs.has(desc.digest))) await this.fetchBlob(ref, desc, opts, onProgress);
    tracker.update(desc.digest, { phase: "done", downloaded: desc.size });
    logger.debug("layer ready", { layer: desc.digest, bytes: desc.size, ms: Math.round(performance.now() - started) });
    // Recorded with the image (one transaction); until then the unpacked dir is held by inFlight.
    return rec;
  }

  /**
   * Download a layer's blob and unpack it under its chain ID, streaming the
   * download into the unpacker when it starts from byte 0 (see layer_tee.ts).
   */
  private async downloadAndUnpack(
    ref: ImageRef, key: string, desc: Descriptor, diffID: string, chainID: string, parent: string | null,
    opts: PullOptions, onProgress: (bytes: number) => void, onUnpackFromBlob: () => void,
  ): Promise<LayerRecord> {
    const again = this.store.layer(chainID);
    if (again) {
      await this.fetchBlob(ref, desc, opts, onProgress);
      return again;
    }
    const compression = layerCompression(desc.mediaType);
    const local = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, local.signal]) : local.signal;
    const result = await this.layers.create(chainID, async (dir) => {
      const tee = new LayerTee();
      const download = this.fetchBlob(ref, desc, { ...opts, signal }, onProgress, tee).then(
        () => tee.end(),
        (e: unknown) => {
          tee.end(e);
          throw e;
        },
      );
      // It may fail (a full disk) while the unpack is still winding down, before the
      // awaits below are reached: an unobserved rejection then would end the daemon.
      download.catch(() => {});
      let r;
      try {
        if (await tee.decided) {
          r = await applyLayer(tee.stream(), compression, dir, { signal });
        } else {
          await download;
          onUnpackFromBlob();
          r = await this.unpackSlots.run(() => applyLayer(Bun.file(this.blobs.path(desc.digest)).stream(), compression, dir, { signal }));
        }
      } catch (e) {
        tee.abort(e);
        local.abort(e);
        await download.catch(() => {});
        throw e;
      }
      await download; // the layer counts only once its blob is verified
      if (r.diffID !== diffID) {
        throw invalidArgument(`layer ${desc.digest} of ${key} does not match its image config: it unpacks to ${r.diffID}, the config says ${diffID}`);
      }
      return r;
    });
    return { chainID, diffID, blobDigest: desc.digest, parent, bytes: result.bytes, inodes: result.entries };
  }

  // ---- imports (crib ctl load) ----

  /** Keep blobs and layers (digests, chain IDs) from garbage collection until the returned function is called. */
  hold(keys: Iterable<string>): () => void {
    const held = [...keys];
    for (const k of held) this.inFlight.set(k, (this.inFlight.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of held) {
        const n = (this.inFlight.get(k) ?? 1) - 1;
        if (n <= 0) this.inFlight.delete(k);
        else this.inFlight.set(k, n);
      }
    };
  }

  /**
   * Unpack (through the same applier as a pull) and record an image whose blobs
   * are already in the store. The caller holds the blobs (hold()) from the
   * moment it stores them until this returns.
   */
  async importImage(input: ImportInput, signal?: AbortSignal): Promise<ImageRecord> {
    const { manifest, manifestDigest } = input;
    const what = `image ${manifestDigest} from ${input.source}`;
    const blobs = [manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest), ...(input.indexDigest ? [input.indexDigest] : [])];
    const release = this.hold(blobs);
    const started = performance.now();
    try {
      for (const d of blobs) {
        if (!(await this.blobs.has(d))) throw failedPrecondition(`${what}: blob ${d} is not in the store`);
      }
      const config = parseImageConfig(await this.blobs.readBytes(manifest.config.digest, MAX_CONFIG_BYTES), {
        layers: manifest.layers.length,
        what: `config ${manifest.config.digest} of ${what}`,
      });
      const diffIDs = config.rootfs.diff_ids;
      const chains = chainIDs(diffIDs);
      const releaseChains = this.hold(chains);
      try {
        const layerRecords = await Promise.all(
          manifest.layers.map((desc, i) => this.unpackBlob(desc, diffIDs[i]!, chains[i]!, i > 0 ? chains[i - 1]! : null, what, signal)),
        );
        const layers: LayerRef[] = manifest.layers.map((d, i) => ({ digest: d.digest, size: d.size, mediaType: d.mediaType, diffID: diffIDs[i]!, chainID: chains[i]! }));
        const size = (await this.blobs.size(manifestDigest)) + manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
        const record = this.store.put(
          { id: manifest.config.digest, manifestDigest, topDigest: input.indexDigest ?? manifestDigest, configMediaType: manifest.config.mediaType, size, layers, blobs },
          input.names,
          this.isConfigPinned(input.names),
          layerRecords,
        );
        logger.info("imported image", { source: input.source, id: record.id, names: input.names, layers: layers.length, bytes: size, ms: Math.round(performance.now() - started) });
        return record;
      } finally {
        releaseChains();
      }
    } finally {
      release();
    }
  }

  /** Unpack a layer from its stored blob under its chain ID, unless it is there already. */
  private async unpackBlob(desc: Descriptor, diffID: string, chainID: string, parent: string | null, what: string, signal?: AbortSignal): Promise<LayerRecord> {
    const existing = this.store.layer(chainID);
    if (existing) return existing;
    return this.unpacks.run(chainID, async () => {
      const again = this.store.layer(chainID);
      if (again) return again;
      const compression = layerCompression(desc.mediaType);
      const r = await this.layers.create(chainID, async (dir) => {
        const res = await this.unpackSlots.run(() => applyLayer(Bun.file(this.blobs.path(desc.digest)).stream(), compression, dir, { signal }));
        if (res.diffID !== diffID) {
          throw invalidArgument(`layer ${desc.digest} of ${what} does not match its image config: it unpacks to ${res.diffID}, the config says ${diffID}`);
        }
        return res;
      });
      return { chainID, diffID, blobDigest: desc.digest, parent, bytes: r.bytes, inodes: r.entries };
    });
  }

  // ---- pins and settings ----

  /** Pin or unpin an image (crib ctl pin/unpin): the kubelet's image GC leaves pinned images alone. */
  setPinned(text: string, pinned: boolean): ImageRecord {
    const image = this.find(text);
    if (!image) throw notFoundImage(text);
    this.store.setPinned(image.id, pinned);
    return this.store.get(image.id)!;
  }

  /**
   * Names the config pins, normalised as images are named: image.pinned and
   * the sandbox image (containerd pins its sandbox image too).
   */
  private configPinNames(): Set<string> {
    const out = new Set<string>();
    for (const text of [...this.config.image.pinned, this.config.image.pauseImage]) {
      if (!text) continue;
      try {
        const ref = parseReference(text);
        out.add(ref.digest ? repoDigest(ref, ref.digest) : repoTag(ref)!);
      } catch (e) {
        logger.warn("image.pinned: not an image reference; ignored", { image: text, error: errorMessage(e) });
      }
    }
    return out;
  }

  private isConfigPinned(names: string[]): boolean {
    const pins = this.configPinNames();
    return names.some((n) => pins.has(n));
  }

  /** Pin stored images the config names; unpin those only `before` (the previous config) named. */
  private applyConfigPins(before: Set<string> = new Set()): { pinned: string[]; unpinned: string[] } {
    const now = this.configPinNames();
    const pinned: string[] = [];
    const unpinned: string[] = [];
    for (const img of this.store.list()) {
      const wanted = img.names.some((n) => now.has(n));
      if (wanted && !img.pinned) {
        this.store.setPinned(img.id, true);
        pinned.push(img.id);
      } else if (!wanted && img.pinned && img.names.some((n) => before.has(n))) {
        this.store.setPinned(img.id, false);
        unpinned.push(img.id);
      }
    }
    return { pinned, unpinned };
  }

  /**
   * SIGHUP: take the registries, pull settings and pins of a reloaded config.
   * The config object is the daemon's, so this updates what Status reports too.
   * Requests already sent finish on the old registry client; every later one,
   * also of a pull already running, uses the new registries.
   */
  applySettings(next: Pick<Config, "registries" | "pull" | "image" | "policy">, policy: Policy = compilePolicy(next.policy)): { pinned: string[]; unpinned: string[] } {
    const before = this.configPinNames();
    this.config.policy = next.policy;
    this.trust.setPolicy(policy);
    this.config.registries = next.registries;
    this.config.pull = next.pull;
    this.config.image = next.image;
    const old = this.registry;
    this.registry = new RegistryClient({ registries: next.registries });
    // Graceful: requests already sent on the old client's connections complete.
    void old.close().catch(() => {});
    this.downloads = new Limiter(next.pull.maxConcurrentDownloads);
    return this.applyConfigPins(before);
  }

  // ---- lookups ----

  /**
   * Find an image the way the kubelet and crictl name them: full id, id
   * without "sha256:", a unique id prefix, repo:tag (normalised), repo@digest.
   */
  find(text: string): ImageRecord | undefined {
    if (!text) throw invalidArgument("image is empty: give a name, tag, digest or image id");
    if (text.startsWith("sha256:") && text.length === 71) return this.store.get(text);
    if (looksLikeImageId(text)) return this.store.get(`sha256:${text}`);
    if (/^[a-f0-9]{4,63}$/.test(text)) {
      const byPrefix = this.store.byIdPrefix(text);
      if (byPrefix.length === 1) return byPrefix[0];
      if (byPrefix.length > 1) throw invalidArgument(`image id prefix ${text} is ambiguous: it matches ${byPrefix.length} images`);
    }
    let ref: ImageRef;
    try {
      ref = parseReference(text);
    } catch (e) {
      if (e instanceof CribError) return undefined;
      throw e;
    }
    if (ref.digest) return this.store.byName(`${repoName(ref)}@${ref.digest}`) ?? this.byManifestDigest(repoName(ref), ref.digest);
    return this.store.byName(repoTag(ref)!);
  }

  /** repo@<platform manifest digest> also names the image (containerd accepts it). */
  private byManifestDigest(repo: string, digest: string): ImageRecord | undefined {
    return this.store.list().find((i) => i.manifestDigest === digest && i.names.some((n) => n.startsWith(`${repo}:`) || n.startsWith(`${repo}@`)));
  }

  list(): ImageRecord[] {
    return this.store.list();
  }

  /**
   * The image's config, parsed once: an image id is its config's digest, so
   * the config never changes (ListImages and ImageStatus ask for it often).
   */
  async imageConfig(image: ImageRecord): Promise<ImageConfig> {
    const known = this.configs.get(image.id);
    if (known) return known;
    const config = parseImageConfig(await this.blobs.readBytes(image.id, MAX_CONFIG_BYTES), { layers: image.layers.length, what: `config of image ${image.id}` });
    this.configs.set(image.id, config);
    return config;
  }

  // ---- removal ----

  /**
   * Remove an image found by id or any of its names: the CRI removes the
   * image, so every name goes, then the blobs and layers nothing else holds.
   * Idempotent: an absent image is not an error.
   */
  async remove(text: string): Promise<boolean> {
    const image = this.find(text);
    if (!image) return false;
    // As CRI-O: an image a container runs from stays (its layers are mounted).
    const user = this.usedBy(image.id);
    if (user) throw failedPrecondition(`image ${text} (${image.id}) is in use by container ${user}; remove the container first`);
    this.store.remove(image.id);
    this.configs.delete(image.id);
    const removed = await this.gc();
    logger.info("removed image", { image: text, id: image.id, ...removed });
    return true;
  }

  /** Delete blobs and layers no image holds (and no pull in progress). */
  async gc(): Promise<{ blobs: number; layers: number }> {
    const { blobs, chainIDs: chains } = this.store.referenced();
    let nBlobs = 0;
    let nLayers = 0;
    for (const d of await this.blobs.list()) {
      if (blobs.has(d) || this.inFlight.has(d)) continue;
      if (await this.blobs.delete(d)) nBlobs++;
    }
    for (const l of this.store.layers()) {
      if (chains.has(l.chainID) || this.inFlight.has(l.chainID)) continue;
      this.store.removeLayer(l.chainID);
      await this.layers.remove(l.chainID);
      nLayers++;
    }
    this.store.dropOrphanSignatures();
    // Directories without a row (a crash between unpack and commit).
    const known = new Set(this.store.layers().map((l) => l.chainID.slice("sha256:".length)));
    for (const hex of (await this.layers.listOnDisk()).complete) {
      if (known.has(hex) || this.inFlight.has(`sha256:${hex}`)) continue;
      await this.layers.remove(`sha256:${hex}`);
      nLayers++;
    }
    return { blobs: nBlobs, layers: nLayers };
  }

  // ---- usage ----

  async usage(): Promise<{ images: number; blobCount: number; blobBytes: number; layerCount: number; layerBytes: number; layerInodes: number; orphanBlobs: string[]; orphanLayers: string[]; ingestBytes: number }> {
    const { blobs, chainIDs: chains } = this.store.referenced();
    const onDisk = await this.blobs.list();
    let blobBytes = 0;
    for (const d of onDisk) blobBytes += await this.blobs.size(d);
    const layerRows = this.store.layers();
    const { layerBytes, layerInodes } = this.store.usage();
    const known = new Set(layerRows.map((l) => l.chainID));
    const dirs = (await this.layers.listOnDisk()).complete.map((h) => `sha256:${h}`);
    return {
      images: this.store.list().length,
      blobCount: onDisk.length,
      blobBytes,
      layerCount: layerRows.length,
      layerBytes,
      layerInodes,
      orphanBlobs: onDisk.filter((d) => !blobs.has(d) && !this.inFlight.has(d)),
      orphanLayers: [...layerRows.map((l) => l.chainID).filter((c) => !chains.has(c) && !this.inFlight.has(c)), ...dirs.filter((c) => !known.has(c) && !this.inFlight.has(c))],
      ingestBytes: await dirBytes(join(this.config.root, "ingest")),
    };
  }
}

export function assertImageSpec(spec: { image: string } | null, rpc: string): string {
  const image = spec?.image ?? "";
  if (!image) throw invalidArgument(`${rpc}: image.image is empty: give a name, tag, digest or image id`);
  return image;
}

export function notFoundImage(text: string) {
  return notFound(`image "${text}" not found`);
}

/**
 * A pull churns through many short-lived chunk buffers and the engine's
 * collector is lazy about external (ArrayBuffer) memory, so an idle daemon
 * would keep a pull's peak (~170 MiB for 100 MB) resident. Collect once a
 * pull is over. (Collecting during the pull was measured: it cost time and
 * did not lower the peak.)
 */
function releaseGarbage(): void {
  Bun.gc(true);
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const n of names) total += (await stat(join(dir, n)).catch(() => ({ size: 0 }))).size;
  return total;
}
