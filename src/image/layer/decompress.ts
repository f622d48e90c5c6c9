// Decompression of layer blobs as a stream of chunks.
//
// Engines, measured by test/bench/decompress.ts on a ~100 MB layer (2-core VM):
// - zstd: DecompressionStream("zstd"), Bun's built-in libzstd. As fast as the
//   zstd-napi addon's stream (which `bun build --compile` cannot embed) and, unlike
//   Bun's node:zlib createZstdDecompress, it fails on a truncated stream instead of
//   ending quietly.
// - gzip: node:zlib createGunzip with 1 MiB output chunks. Multi-member gzip
//   (eStargz layers) works; a truncated stream fails.
// Both run off the JS thread, so two layers decompress in parallel and the event
// loop stays responsive. Output comes in bounded chunks (≤ 1 MiB) however small the
// input, so a caller counting bytes stops a decompression bomb early.

import type { ZlibOptions } from "node:zlib";
import { errorMessage, invalidArgument } from "../../errors.ts";
import { readerChunks } from "../../util/reader_chunks.ts";

export type Compression = "gzip" | "zstd" | "none";

/** Where layer bytes come from: an HTTP body, a file stream, an array of chunks. */
export type ByteSource = AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | Iterable<Uint8Array>;

/** `src` as an async iterable (a ReadableStream already is one in Bun). */
export function asAsyncIterable(src: ByteSource): AsyncIterable<Uint8Array> {
  if (Symbol.asyncIterator in src) return src as AsyncIterable<Uint8Array>;
  const sync = src as Iterable<Uint8Array>;
  return {
    async *[Symbol.asyncIterator]() {
      yield* sync;
    },
  };
}

const GZIP_CHUNK = 1024 * 1024;
/** Output the decoder may produce ahead of the reader, so it works while files are written. */
const GZIP_BUFFER = 4 * 1024 * 1024;
/** The same for the web-stream decoder (zstd). */
const WEB_BUFFER = 4 * 1024 * 1024;

/**
 * The decompressed bytes of `input`. A corrupt or truncated stream fails with a
 * CribError (invalid_argument); an error of `input` itself is passed on unchanged.
 * Stopping the iteration early cancels `input`.
 */
export function decompressStream(input: ByteSource, compression: Compression): AsyncIterable<Uint8Array> {
  switch (compression) {
    case "none":
      return asAsyncIterable(input);
    case "gzip":
      return gunzip(asAsyncIterable(input));
    case "zstd":
      return webDecompress(asAsyncIterable(input), "zstd");
  }
}

/** Remembers the error the source threw, to tell it from a decoding error. */
class SourceTap {
  error: unknown = undefined;
  failed = false;

  async *wrap(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const it = src[Symbol.asyncIterator]();
    try {
      for (;;) {
        let r: IteratorResult<Uint8Array>;
        try {
          r = await it.next();
        } catch (err) {
          this.error = err;
          this.failed = true;
          throw err;
        }
        if (r.done) return;
        yield r.value;
      }
    } finally {
      if (!this.failed) await it.return?.();
    }
  }

  translate(err: unknown, format: string): unknown {
    if (this.failed && err === this.error) return err;
    return invalidArgument(`layer is not valid ${format} data: ${errorMessage(err)}`, err);
  }
}

/**
 * node:zlib and node:stream, loaded on the first gzip layer: with the streams they pull
 * in, they were ~1.5 ms of every daemon start-up.
 */
const loadGzipModules = () => Promise.all([import("node:zlib"), import("node:stream")]);
let gzipModules: ReturnType<typeof loadGzipModules> | undefined;

async function* gunzip(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const [zlib, { Readable, pipeline }] = await (gzipModules ??= loadGzipModules());
  const tap = new SourceTap();
  // readableHighWaterMark reaches the underlying Transform (not in ZlibOptions' type):
  // the gunzip thread may run that far ahead of the reader.
  const t = zlib.createGunzip({ chunkSize: GZIP_CHUNK, readableHighWaterMark: GZIP_BUFFER } as ZlibOptions);
  const src = Readable.from(tap.wrap(input), { objectMode: false });
  pipeline(src, t, () => {
    // errors surface through the iteration below
  });
  try {
    for await (const chunk of t as AsyncIterable<Uint8Array>) yield chunk;
  } catch (err) {
    throw tap.translate(err, "gzip");
  } finally {
    t.destroy();
    src.destroy();
  }
}

async function* webDecompress(input: AsyncIterable<Uint8Array>, format: "zstd" | "gzip"): AsyncGenerator<Uint8Array> {
  const tap = new SourceTap();
  const it = tap.wrap(input);
  const src = new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        const r = await it.next();
        if (r.done) ctrl.close();
        else ctrl.enqueue(r.value);
      },
      async cancel() {
        await it.return(undefined);
      },
    },
    { highWaterMark: 1 },
  );
  // The lib types want ArrayBuffer-backed chunks; any Uint8Array works at run time.
  const ds = new DecompressionStream(format) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
  // A queue after the decoder lets it run ahead of the reader (its own readable side
  // holds nothing).
  const buffer = new TransformStream<Uint8Array, Uint8Array>(undefined, undefined, {
    highWaterMark: WEB_BUFFER,
    size: (chunk) => chunk?.byteLength ?? 0,
  });
  const reader = src.pipeThrough(ds).pipeThrough(buffer).getReader();
  try {
    yield* readerChunks<Uint8Array>(reader, (err) => tap.translate(err, format));
  } finally {
    reader.releaseLock();
  }
}

/**
 * Pulls from `src` ahead of the consumer, keeping up to `limit` bytes queued, so the
 * producer (a decompressor on another thread, a socket) works while the consumer
 * writes files. Errors of `src` are thrown in order, after the chunks before them.
 */
export async function* readahead(src: AsyncIterable<Uint8Array>, limit: number): AsyncGenerator<Uint8Array> {
  const it = src[Symbol.asyncIterator]();
  const queue: Uint8Array[] = [];
  let head = 0;
  let queued = 0;
  let ended = false;
  let failure: { error: unknown } | undefined;
  let pump: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  const fill = async (): Promise<void> => {
    try {
      while (!ended && queued < limit) {
        const r = await it.next();
        if (r.done) {
          ended = true;
          break;
        }
        queue.push(r.value);
        queued += r.value.length;
        wake?.();
      }
    } catch (error) {
      failure = { error };
      ended = true;
    } finally {
      pump = undefined;
      wake?.();
    }
  };

  let closed = false;
  try {
    for (;;) {
      if (pump === undefined && !ended && queued < limit) pump = fill();
      if (head < queue.length) {
        const chunk = queue[head]!;
        queue[head++] = EMPTY;
        if (head > 1024) {
          queue.splice(0, head);
          head = 0;
        }
        queued -= chunk.length;
        yield chunk;
        continue;
      }
      if (failure !== undefined) {
        closed = true;
        throw failure.error;
      }
      if (ended) {
        closed = true;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    if (!closed) {
      // The consumer stopped early: close the source once its pending read settles
      // (an async generator queues return() behind a running next() anyway).
      const pending = pump ?? Promise.resolve();
      void pending.then(() => it.return?.()).catch(() => undefined);
    }
  }
}

const EMPTY = new Uint8Array(0);
