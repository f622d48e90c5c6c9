// Unpacking a layer while it downloads: the blob store's download body is
// passed through a tee that also feeds the unpacker, so a layer is ready
// about when its last byte lands instead of a full unpack later.
//
// The tee only serves a download that starts at byte 0 and reaches it in
// order; a resumed, shared (single-flight) or restarted download falls back
// to unpacking from the stored blob afterwards. The unpacked directory is
// committed only when both the blob verified and the diff ID matched, so
// unverified bytes can never become a layer.
import type { BlobSource } from "./blob_store.ts";

/** Bytes the unpacker may lag behind the download before the download waits. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export class LayerTee {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  private fed = 0; // bytes handed to the unpacker so far
  private ended = false;
  private failure: unknown;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;
  /** False once the download did not start at 0: the caller unpacks from the blob instead. */
  active = true;
  /** Whether the download ever called through this tee. */
  used = false;
  private decide: (teeing: boolean) => void = () => {};
  /**
   * Resolves once it is known where the unpacker reads: true = from this tee
   * (a fresh download from byte 0), false = from the stored blob afterwards
   * (a resumed partial, or no download here: the blob was there or another
   * pull fetched it).
   */
  readonly decided = new Promise<boolean>((resolve) => (this.decide = resolve));

  /** Wrap a blob source: pass every byte on, and copy the new ones to the unpacker. */
  wrap(source: BlobSource, requestedOffset: number): BlobSource {
    const body = Symbol.asyncIterator in source ? source : source.body;
    const start = Symbol.asyncIterator in source ? requestedOffset : source.offset;
    if (!this.used) {
      this.used = true;
      if (start !== 0) this.active = false; // resuming a partial from an earlier run
      this.decide(this.active);
    }
    if (!this.active) return source;
    const tee = this;
    async function* passThrough(): AsyncGenerator<Uint8Array> {
      let at = start;
      for await (const chunk of body) {
        // Bytes before `fed` were already passed on (a restart or a resume).
        const skip = Math.max(0, Math.min(chunk.length, tee.fed - at));
        if (at + skip > tee.fed) throw new Error(`download skipped ahead of the unpacker (${at} > ${tee.fed})`);
        at += chunk.length;
        if (skip < chunk.length) await tee.push(chunk.subarray(skip));
        yield chunk;
      }
    }
    return { body: passThrough(), offset: start };
  }

  private async push(chunk: Uint8Array): Promise<void> {
    while (this.buffered >= MAX_BUFFERED && !this.failure) await new Promise<void>((r) => (this.wakeWriter = r));
    if (this.failure) throw this.failure;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.fed += chunk.length;
    this.wakeReader?.();
  }

  /** The download finished (verified) or failed. */
  end(error?: unknown): void {
    this.ended = true;
    this.decide(false);
    if (error !== undefined) this.failure = error;
    this.wakeReader?.();
    this.wakeWriter?.();
  }

  /** The unpacker gave up: unblock the download, which then fails too. */
  abort(error: unknown): void {
    this.failure ??= error;
    this.wakeWriter?.();
  }

  /** What the unpacker reads. */
  async *stream(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.buffered -= chunk.length;
        this.wakeWriter?.();
        yield chunk;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((r) => (this.wakeReader = r));
      this.wakeReader = undefined;
    }
  }
}
