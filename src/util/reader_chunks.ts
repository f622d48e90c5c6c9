// A web stream's reader as an async iterable, for the places that hand its chunks on.

/** What both the DOM's and node:stream/web's stream readers offer. */
interface ChunkReader<T> {
  read(): Promise<{ done: true; value?: T } | { done: false; value: T }>;
  cancel(): Promise<void>;
}

/**
 * The chunks `reader` yields. A read error is passed through `translate` and thrown;
 * a consumer that stops early cancels the stream, which frees what feeds it (a
 * connection, a decoder).
 */
export async function* readerChunks<T>(reader: ChunkReader<T>, translate: (err: unknown) => unknown): AsyncGenerator<T> {
  let finished = false;
  try {
    for (;;) {
      let r: Awaited<ReturnType<ChunkReader<T>["read"]>>;
      try {
        r = await reader.read();
      } catch (err) {
        finished = true;
        throw translate(err);
      }
      if (r.done) {
        finished = true;
        return;
      }
      yield r.value;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}
