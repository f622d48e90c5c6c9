// SPDY/3 header block compression: one zlib stream per direction per connection,
// primed with the SPDY/3 dictionary, each header block ending on a sync flush.
//
// Outgoing blocks are written as zlib "stored" (uncompressed) deflate blocks: a
// valid zlib stream any inflater reads, synchronous (frames go out in order without
// waiting on an async compressor), and free of the compression side channel that
// made browsers drop SPDY header compression (CRIME). Our header blocks are a few
// dozen bytes, so nothing is lost. Incoming blocks are inflated with node:zlib.

import zlib from "node:zlib";
import { adler32, SPDY3_DICTIONARY } from "./spdy_dictionary.ts";
import { SpdyProtocolError } from "./spdy_frames.ts";

const DICT_ID = adler32(SPDY3_DICTIONARY);
const MAX_STORED = 0xffff;

/** BFINAL 0, BTYPE 00 (then padding to the byte boundary), LEN and its complement. */
function storedBlockHeader(n: number): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt16LE(n, 1);
  h.writeUInt16LE(~n & 0xffff, 3);
  return h;
}

/** Compresses header blocks for one direction of one connection. */
export class HeaderCompressor {
  private started = false;

  compress(block: Uint8Array): Buffer {
    const parts: Buffer[] = [];
    if (!this.started) {
      // CMF 0x78 (deflate, 32K window); FLG with FDICT, FCHECK making the pair a multiple of 31.
      const head = Buffer.alloc(6);
      head[0] = 0x78;
      head[1] = 0xbb;
      head.writeUInt32BE(DICT_ID, 2);
      parts.push(head);
      this.started = true;
    }
    // The data in non-final stored blocks, then the empty stored block a sync flush
    // ends with. The empty block is not decoration: Go's inflater (kubectl's SPDY
    // framer) reads on to the next block header before it hands out a stored block's
    // data, and without the marker that read runs past the frame and fails the next
    // one ("compressed payload size was incorrect").
    for (let off = 0; off < block.length; off += MAX_STORED) {
      const n = Math.min(MAX_STORED, block.length - off);
      parts.push(storedBlockHeader(n), Buffer.from(block.buffer, block.byteOffset + off, n));
    }
    parts.push(storedBlockHeader(0));
    return Buffer.concat(parts);
  }
}

/** Inflates the header blocks one direction of a connection sends, in order. */
export class HeaderDecompressor {
  private readonly inflate = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  private chain: Promise<unknown> = Promise.resolve();
  private out: Buffer[] = [];
  private outBytes = 0;
  private failure: Error | undefined;
  private rejectCurrent: ((e: Error) => void) | undefined;

  constructor(
    /** An inflated header block larger than this ends the session (a zlib bomb). */
    private readonly maxBlockBytes = 256 * 1024,
  ) {
    this.inflate.on("data", (chunk: Buffer) => {
      this.outBytes += chunk.length;
      if (this.outBytes <= this.maxBlockBytes) this.out.push(chunk);
    });
    this.inflate.on("error", (err: Error) => {
      this.failure ??= new SpdyProtocolError(`cannot decompress a SPDY header block: ${err.message}`);
      this.rejectCurrent?.(this.failure);
    });
  }

  /** The uncompressed block; blocks are decompressed in call order. */
  decompress(block: Uint8Array): Promise<Buffer> {
    const run = this.chain.then(() => this.one(block));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private one(block: Uint8Array): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Buffer>((resolve, reject) => {
      this.rejectCurrent = reject;
      this.out = [];
      this.outBytes = 0;
      this.inflate.write(block);
      this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.failure) return reject(this.failure);
        if (this.outBytes > this.maxBlockBytes) {
          this.failure = new SpdyProtocolError(`a SPDY header block inflates to more than ${this.maxBlockBytes} bytes`);
          return reject(this.failure);
        }
        resolve(Buffer.concat(this.out));
      });
    });
  }

  close(): void {
    this.inflate.destroy();
  }
}
