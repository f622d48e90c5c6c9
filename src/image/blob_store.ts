// Content-addressed blob store: <root>/blobs/<algorithm>/<hex>.
//
// A blob with a name is always complete and verified: a download streams into
// <root>/ingest/<hex>.partial, hashed as it is written, then fsynced, checked
// (digest and exact size), renamed into place and the directory fsynced. A
// .partial left by a killed process is resumed from its length (its bytes are
// hashed again first). The same blob asked for twice at once is fetched once.
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { CribError, deadlineExceeded, errnoCode, errorMessage, failedPrecondition, internal, notFound, registryUnavailable, resourceExhausted } from "../errors.ts";
import { log } from "../log/logger.ts";
import { fsyncDir } from "../storage/durable.ts";
import { unlessAborted } from "../util/abortable.ts";
import { digestOf, Hasher, parseDigest, type Digest } from "./digest.ts";
import { randomHex } from "../util/random_hex.ts";

const logger = log.with({ component: "blob-store" });

/** What a blob download needs from its descriptor. */
export interface BlobDescriptor {
  digest: string;
  size: number;
}

/**
 * A source of a blob's bytes from `offset` on. It may say the body really
 * starts elsewhere (a server that ignored Range restarts at 0): return
 * `{ body, offset }` then. RegistryClient.fetchBlob's result fits as is.
 */
export type BlobSource = AsyncIterable<Uint8Array> | { body: AsyncIterable<Uint8Array>; offset: number };
export type BlobOpener = (offset: number, signal: AbortSignal) => Promise<BlobSource>;

export interface EnsureOptions {
  onProgress?(bytesSoFar: number, total: number): void;
  signal?: AbortSignal;
  /** Stall window; 0 or absent turns stall detection off. */
  progressTimeoutMs?: number;
  /** Fewer bytes than this per second, over a whole window, is a stall (0: only a window with no bytes at all). */
  minBytesPerSecond?: number;
  /** Resumes after a body fails mid-way (connection reset, early end); default 3. */
  maxBodyRetries?: number;
  /** Waits before each resume; default 200, 800, 2000 ms. */
  retryDelaysMs?: number[];
}

export interface EnsureResult {
  digest: string;
  path: string;
  size: number;
  /** Bytes transferred by this download (0 when the blob was already there or another caller fetched it). */
  fetched: number;
}

interface Flight {
  promise: Promise<EnsureResult>;
  controller: AbortController;
  waiters: number;
  listeners: Set<(bytes: number, total: number) => void>;
}

const DEFAULT_BODY_RETRIES = 3;
const DEFAULT_RETRY_DELAYS_MS = [200, 800, 2000];
const REHASH_CHUNK = 1024 * 1024;

export class BlobStore {
  private readonly flights = new Map<string, Flight>();

  constructor(readonly root: string) {}

  private digestInfo(digest: string): Digest {
    return parseDigest(digest);
  }

  /** Where a blob lives (whether or not it is there). Throws invalid_argument for a bad digest. */
  path(digest: string): string {
    const d = this.digestInfo(digest);
    return join(this.root, "blobs", d.algorithm, d.hex);
  }

  private ingestDir(): string {
    return join(this.root, "ingest");
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.path(digest))).isFile();
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return false;
      throw e;
    }
  }

  /** Size in bytes; not_found when absent. */
  async size(digest: string): Promise<number> {
    try {
      return (await stat(this.path(digest))).size;
    } catch (e) {
      if (errnoCode(e) === "ENOENT") throw notFound(`blob ${digest} is not in the store`);
      throw e;
    }
  }

  /** Read a small blob (manifest, config), verifying its digest; resource_exhausted over maxBytes. */
  async readBytes(digest: string, maxBytes: number): Promise<Uint8Array> {
    const d = this.digestInfo(digest);
    const size = await this.size(digest);
    if (size > maxBytes) throw resourceExhausted(`blob ${digest} is ${size} bytes, over the ${maxBytes} byte limit for reading it into memory`);
    const bytes = new Uint8Array(await readFile(this.path(digest)));
    const got = digestOf(bytes, d.algorithm);
    if (got !== digest) throw internal(`blob ${digest} in ${this.root} is corrupt on disk (its content hashes to ${got})`);
    return bytes;
  }

  /** Store bytes already in memory (a manifest, a config) after checking their digest. Returns the path. */
  async writeBytes(digest: string, bytes: Uint8Array): Promise<string> {
    const d = this.digestInfo(digest);
    const got = digestOf(bytes, d.algorithm);
    if (got !== digest) throw failedPrecondition(`content for blob ${digest} has digest ${got}; not stored`);
    const final = this.path(digest);
    if (await this.has(digest)) return final;
    await this.dirs(d);
    const tmp = join(this.ingestDir(), `${d.hex}.${process.pid}-${randomHex(4)}.tmp`);
    const fh = await open(tmp, "w", 0o644);
    try {
      await writeAll(fh, bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    await fsyncDir(join(this.root, "blobs", d.algorithm));
    return final;
  }

  /** Remove a blob; false when it was not there. */
  async delete(digest: string): Promise<boolean> {
    const p = this.path(digest);
    try {
      await rm(p);
      return true;
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return false;
      throw e;
    }
  }

  /** Every stored blob's digest. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const algorithm of ["sha256", "sha512"]) {
      let names: string[];
      try {
        names = await readdir(join(this.root, "blobs", algorithm));
      } catch (e) {
        if (errnoCode(e) === "ENOENT") continue;
        throw e;
      }
      for (const name of names) {
        const digest = `${algorithm}:${name}`;
        try {
          parseDigest(digest);
          out.push(digest);
        } catch {
          // not a blob name: ignore
        }
      }
    }
    return out.sort();
  }

  /** Remove every abandoned partial download now (a full disk: the space matters more than resuming). */
  dropPartials(): Promise<number> {
    return this.gcIngest(-1);
  }

  /** Remove abandoned files in ingest/ older than `olderThanMs` (never those of a running download). Returns how many. */
  async gcIngest(olderThanMs: number): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.ingestDir());
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return 0;
      throw e;
    }
    const active = new Set([...this.flights.keys()].map((d) => d.slice(d.indexOf(":") + 1)));
    // Ages come from the wall clock (mtimes); after a jump back (boards without an
    // RTC) a file from "the future" would never age: far from now either way is old.
    const now = Date.now();
    let removed = 0;
    for (const name of names) {
      if (active.has(name.split(".")[0] ?? "")) continue;
      const p = join(this.ingestDir(), name);
      try {
        const st = await stat(p);
        if (Math.abs(now - st.mtimeMs) > olderThanMs) {
          await rm(p, { force: true, recursive: true });
          removed++;
        }
      } catch (e) {
        if (errnoCode(e) !== "ENOENT") throw e;
      }
    }
    if (removed > 0) logger.info("removed abandoned partial downloads", { count: removed });
    return removed;
  }

  /**
   * Make sure a blob is in the store, downloading it through `open` if not.
   * Concurrent calls for one digest share one download (the first caller's
   * options drive it; each caller gets progress and may cancel alone). Stalls
   * (too few bytes in a progressTimeoutMs window) fail with deadline_exceeded;
   * a body that breaks off is resumed from where it stopped.
   */
  async ensure(descriptor: BlobDescriptor, opener: BlobOpener, opts: EnsureOptions = {}): Promise<EnsureResult> {
    const d = this.digestInfo(descriptor.digest);
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
      throw failedPrecondition(`blob ${descriptor.digest}: invalid size ${descriptor.size}`);
    }
    opts.signal?.throwIfAborted();
    const existing = await this.existingSize(descriptor.digest);
    if (existing !== undefined) {
      if (existing !== descriptor.size) {
        throw failedPrecondition(`blob ${descriptor.digest} is ${existing} bytes in the store, but its descriptor says ${descriptor.size}`);
      }
      return { digest: descriptor.digest, path: this.path(descriptor.digest), size: existing, fetched: 0 };
    }

    opts.signal?.throwIfAborted();
    let flight = this.flights.get(descriptor.digest);
    const joined = flight !== undefined;
    if (!flight) {
      const controller = new AbortController();
      const listeners = new Set<(bytes: number, total: number) => void>();
      const f: Flight = {
        controller,
        listeners,
        waiters: 0,
        promise: this.download(d, descriptor.size, opener, opts, controller.signal, (n) => {
          for (const l of listeners) l(n, descriptor.size);
        }).finally(() => this.flights.delete(descriptor.digest)),
      };
      this.flights.set(descriptor.digest, f);
      flight = f;
    }
    const f = flight;
    f.waiters++;
    const listener = opts.onProgress?.bind(opts);
    if (listener) f.listeners.add(listener);
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      f.waiters--;
      if (listener) f.listeners.delete(listener);
    };

    return new Promise<EnsureResult>((resolve, reject) => {
      const onAbort = () => {
        leave();
        const reason: unknown = opts.signal?.reason;
        const last = f.waiters === 0;
        if (last) f.controller.abort(reason);
        // Out of space: the download removes its partial as it stops; the caller hears
        // once that is done, so a pull that fails on a full disk has given the space back.
        if (last && reason instanceof CribError && reason.kind === "resource_exhausted") void f.promise.then(() => reject(reason), () => reject(reason));
        else reject(reason);
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      f.promise.then(
        (r) => {
          opts.signal?.removeEventListener("abort", onAbort);
          leave();
          resolve(joined ? { ...r, fetched: 0 } : r);
        },
        (e: unknown) => {
          opts.signal?.removeEventListener("abort", onAbort);
          leave();
          reject(e);
        },
      );
    });
  }

  private async existingSize(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(digest))).size;
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return undefined;
      throw e;
    }
  }

  private async dirs(d: Digest): Promise<void> {
    await mkdir(this.ingestDir(), { recursive: true, mode: 0o700 });
    await mkdir(join(this.root, "blobs", d.algorithm), { recursive: true, mode: 0o755 });
  }

  private async download(
    d: Digest,
    size: number,
    opener: BlobOpener,
    opts: EnsureOptions,
    signal: AbortSignal,
    emit: (bytes: number) => void,
  ): Promise<EnsureResult> {
    await this.dirs(d);
    const partial = join(this.ingestDir(), `${d.hex}.partial`);
    const final = join(this.root, "blobs", d.algorithm, d.hex);
    const fh = await open(partial, "a+", 0o600);
    let closed = false;
    let stallTimer: ReturnType<typeof setInterval> | undefined;
    let fetched = 0;
    try {
      let offset = (await fh.stat()).size;
      let hasher = new Hasher(d.algorithm);
      if (offset > size) {
        await fh.truncate(0);
        offset = 0;
      } else if (offset > 0) {
        await rehash(fh, offset, hasher);
        logger.info("resuming partial download", { blob: d.text, offset, size });
      }
      emit(offset);

      // One controller for both the callers' cancel and the stall.
      const inner = new AbortController();
      if (signal.aborted) inner.abort(signal.reason);
      signal.addEventListener("abort", () => inner.abort(signal.reason), { once: true });

      // Stall detection: a window with too few bytes aborts the download.
      let windowBytes = 0;
      const windowMs = opts.progressTimeoutMs ?? 0;
      if (windowMs > 0) {
        const needed = Math.max(1, Math.ceil(((opts.minBytesPerSecond ?? 0) * windowMs) / 1000));
        stallTimer = setInterval(() => {
          if (windowBytes < needed) {
            clearInterval(stallTimer);
            const secs = Number((windowMs / 1000).toFixed(3));
            inner.abort(
              deadlineExceeded(
                `pull of ${d.text} stalled: ${windowBytes} bytes in the last ${secs}s (at least ${needed} needed; ${offset} of ${size} bytes so far)`,
              ),
            );
          }
          windowBytes = 0;
        }, windowMs);
      }

      const maxRetries = opts.maxBodyRetries ?? DEFAULT_BODY_RETRIES;
      const delays = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
      let retries = 0;
      const retryOrThrow = async (problem: string, cause?: unknown) => {
        if (retries >= maxRetries) {
          throw registryUnavailable(`download of blob ${d.text} failed at byte ${offset} of ${size} after ${retries} resumes: ${problem}`, cause);
        }
        const wait = delays[Math.min(retries, delays.length - 1)] ?? 0;
        retries++;
        logger.warn("blob download interrupted, resuming", { blob: d.text, offset, size, attempt: retries, error: problem });
        await unlessAborted(Bun.sleep(wait), inner.signal);
      };

      while (offset < size) {
        let source: BlobSource;
        try {
          source = await unlessAborted(opener(offset, inner.signal), inner.signal);
        } catch (e) {
          if (inner.signal.aborted) throw inner.signal.reason;
          if (e instanceof CribError) throw e;
          await retryOrThrow(errorMessage(e), e);
          continue;
        }
        const body = Symbol.asyncIterator in source ? source : source.body;
        const start = Symbol.asyncIterator in source ? offset : source.offset;
        if (start !== offset) {
          if (start !== 0) throw internal(`blob ${d.text}: asked for bytes from ${offset}, got a body starting at ${start}`);
          logger.info("restarting blob download from 0", { blob: d.text, had: offset });
          await fh.truncate(0);
          hasher = new Hasher(d.algorithm);
          offset = 0;
          emit(0);
        }
        const it = body[Symbol.asyncIterator]();
        try {
          for (;;) {
            const r = await unlessAborted(it.next(), inner.signal);
            if (r.done) break;
            const chunk = r.value;
            if (offset + chunk.length > size) {
              await fh.close();
              closed = true;
              await rm(partial, { force: true });
              throw failedPrecondition(`blob ${d.text} is longer than its descriptor's size of ${size} bytes; download refused and deleted`);
            }
            try {
              await writeAll(fh, chunk);
            } catch (e) {
              if (!isDiskFull(e)) throw e;
              // Not a broken body to resume: give the space back (a partial would hold it) and say why.
              await fh.close();
              closed = true;
              await rm(partial, { force: true });
              throw resourceExhausted(`disk full: no space left in ${this.root} for blob ${d.text} (${offset} of ${size} bytes written): ${errorMessage(e)}`, e);
            }
            hasher.update(chunk);
            offset += chunk.length;
            fetched += chunk.length;
            windowBytes += chunk.length;
            emit(offset);
          }
        } catch (e) {
          void Promise.resolve(it.return?.()).catch(() => {});
          if (inner.signal.aborted) throw inner.signal.reason;
          if (e instanceof CribError) throw e;
          await retryOrThrow(errorMessage(e), e);
          continue;
        }
        if (offset < size) await retryOrThrow(`the body ended at byte ${offset} of ${size}`);
      }
      clearInterval(stallTimer);

      await fh.sync();
      await fh.close();
      closed = true;
      const got = hasher.digest();
      if (got !== d.text) {
        await rm(partial, { force: true });
        throw failedPrecondition(`blob ${d.text} is corrupt: the ${size} bytes downloaded hash to ${got}; the download was deleted`);
      }
      await rename(partial, final);
      await fsyncDir(join(this.root, "blobs", d.algorithm));
      logger.debug("blob stored", { blob: d.text, size, fetched });
      return { digest: d.text, path: final, size, fetched };
    } catch (e) {
      // Stopped for lack of space, here or in the unpack this download feeds: give the
      // space back at once; a partial kept for a resume would hold it on a full disk.
      if (e instanceof CribError && e.kind === "resource_exhausted") {
        if (!closed) await fh.close().catch(() => {});
        closed = true;
        await rm(partial, { force: true });
      }
      throw e;
    } finally {
      clearInterval(stallTimer);
      if (!closed) await fh.close().catch(() => {});
    }
  }
}

/** ENOSPC or EDQUOT: the file system (or the quota) is full. */
export function isDiskFull(e: unknown): boolean {
  const code = errnoCode(e);
  return code === "ENOSPC" || code === "EDQUOT";
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, at, bytes.length - at);
    at += bytesWritten;
  }
}

/** Hash the first `length` bytes of a partial file (resuming a download). */
async function rehash(fh: FileHandle, length: number, hasher: Hasher): Promise<void> {
  const buf = new Uint8Array(Math.min(REHASH_CHUNK, length));
  let pos = 0;
  while (pos < length) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - pos), pos);
    if (bytesRead === 0) break;
    hasher.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

