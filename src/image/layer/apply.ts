// Unpacks one image layer (a possibly compressed tar) into its own directory, in the
// form overlayfs expects of a lower dir: whiteouts become 0/0 char devices and opaque
// markers the trusted.overlay.opaque xattr.
//
// The target is a fresh empty directory that belongs to this call (the caller unpacks
// into `<layers>/<chainID>.tmp-…` and renames it on success, or removes it when this
// throws). Entry names are cleaned lexically; a name or hardlink target that climbs
// out of the root, a parent that is a symlink, or a hardlink to something that is not
// an entry of this layer (or is a directory) fails the whole apply with a CribError
// naming the entry.

import { CribError, errnoCode, errorMessage, internal, invalidArgument, permissionDenied, resourceExhausted } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import { decompressStream, readahead, type ByteSource, type Compression } from "./decompress.ts";
import { TarReader, type TarHeader } from "./tar_reader.ts";
import { LayerWriter, Pauser } from "./writer.ts";

export type { Compression, ByteSource } from "./decompress.ts";

export interface ApplyOptions {
  /** Most uncompressed bytes to read (default 16 GiB). */
  maxBytes?: number;
  /** Most tar entries (default 1,000,000). */
  maxEntries?: number;
  signal?: AbortSignal;
}

export interface ApplyResult {
  /** "sha256:<hex>" of the uncompressed tar: compare with the image config's rootfs.diff_ids. */
  diffID: string;
  /** Uncompressed bytes read. */
  bytes: number;
  /** Tar entries (PAX and GNU metadata headers not counted). */
  entries: number;
}

export const DEFAULT_MAX_BYTES = 16 * 1024 ** 3;
export const DEFAULT_MAX_ENTRIES = 1_000_000;

const logger = log.with({ component: "layer" });
/** Decompressed bytes buffered ahead of the writer, so decompression and writing overlap. */
const READAHEAD_BYTES = 4 * 1024 * 1024;
/** Longest stretch of synchronous unpacking between two turns of the event loop. */
const YIELD_EVERY_MS = 4;

/** Counts and hashes the uncompressed bytes as they pass; enforces maxBytes and the signal. */
class Meter {
  bytes = 0;
  private readonly hash = new Bun.CryptoHasher("sha256");
  /** An error of the source (network, abort): passed on as it is. */
  upstreamError: unknown = undefined;

  constructor(
    private readonly maxBytes: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async *wrap(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const it = src[Symbol.asyncIterator]();
    let failed = false;
    try {
      for (;;) {
        let r: IteratorResult<Uint8Array>;
        try {
          this.checkSignal();
          r = await it.next();
        } catch (err) {
          failed = true;
          if (!(err instanceof CribError)) this.upstreamError = err;
          throw err;
        }
        if (r.done) return;
        this.bytes += r.value.length;
        if (this.bytes > this.maxBytes) {
          throw resourceExhausted(`uncompressed layer exceeds the limit of ${this.maxBytes} bytes (maxBytes)`);
        }
        this.hash.update(r.value);
        yield r.value;
      }
    } finally {
      if (!failed) await it.return?.();
    }
  }

  checkSignal(): void {
    if (this.signal?.aborted) {
      this.upstreamError = this.signal.reason;
      throw this.signal.reason;
    }
  }

  digest(): string {
    return `sha256:${this.hash.digest("hex")}`;
  }
}

/** A file system failure while writing `h` into `targetDir`, as a CribError naming the entry. */
function writeFailure(h: TarHeader, targetDir: string, err: unknown): CribError {
  const msg = `layer entry ${JSON.stringify(h.path)}: ${errorMessage(err)}`;
  switch (errnoCode(err)) {
    case "ENOSPC":
    case "EDQUOT":
      return resourceExhausted(`disk full: no space left in ${targetDir} for ${msg}`, err);
    case "EPERM":
    case "EACCES":
      return permissionDenied(msg, err);
    // The layer asks for what no file system gives: a name too long, device numbers out of
    // range, a link to nothing, a name clash of kinds. The image's fault, not crib's.
    case "ENAMETOOLONG":
    case "EINVAL":
    case "ENOENT":
    case "ENOTDIR":
    case "EISDIR":
    case "EEXIST":
    case "ENOTEMPTY":
    case "ELOOP":
    case "EMLINK":
    case "ERANGE":
    case "E2BIG":
      return invalidArgument(msg, err);
    default:
      return internal(msg, err);
  }
}

/**
 * Unpacks `input` (compressed as `compression`) into `targetDir`, an existing empty
 * directory. Resolves with the diffID of the uncompressed tar; every byte of the
 * stream is read and hashed, also what follows the end-of-archive marker.
 */
export async function applyLayer(
  input: ByteSource,
  compression: Compression,
  targetDir: string,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const meter = new Meter(maxBytes, opts.signal);
  const writer = LayerWriter.create(targetDir, logger);
  const reader = new TarReader(meter.wrap(readahead(decompressStream(input, compression), READAHEAD_BYTES)));
  // The writer's metadata calls are synchronous: let the event loop run now and then.
  const pause = new Pauser(YIELD_EVERY_MS);
  let entries = 0;
  try {
    for (;;) {
      await pause.maybe();
      meter.checkSignal();
      const h = await reader.next();
      if (h === null) break;
      entries++;
      if (entries > maxEntries) {
        throw resourceExhausted(`layer has more than ${maxEntries} entries (maxEntries); entry ${JSON.stringify(h.path)} is one too many`);
      }
      try {
        await writer.write(h, reader.body());
      } catch (err) {
        if (err instanceof CribError || err === meter.upstreamError) throw err;
        throw writeFailure(h, targetDir, err);
      }
    }
    await reader.drain();
    try {
      await writer.finish(pause);
    } catch (err) {
      if (err instanceof CribError) throw err;
      throw internal(`setting directory modes and times in ${JSON.stringify(targetDir)}: ${errorMessage(err)}`, err);
    }
  } catch (err) {
    await reader.close().catch(() => undefined);
    throw err;
  }
  return { diffID: meter.digest(), bytes: meter.bytes, entries };
}
