// A small streaming tar writer for image archives (crib ctl save): ustar headers,
// with a PAX extended header when a name is over 100 bytes or a size over the
// 8 GiB that 11 octal digits hold. Files, directories; uid/gid 0, mtime 0, so the
// same images always give the same archive.
import type { FileHandle } from "node:fs/promises";

const BLOCK = 512;
const MAX_OCTAL_SIZE = 8 ** 11 - 1;
const encoder = new TextEncoder();

function putString(h: Uint8Array, offset: number, length: number, s: string): void {
  const b = encoder.encode(s);
  h.set(b.subarray(0, length), offset);
}

function putOctal(h: Uint8Array, offset: number, length: number, n: number): void {
  putString(h, offset, length, `${n.toString(8).padStart(length - 1, "0")}\0`);
}

function header(name: string, size: number, type: "0" | "5" | "x", mode: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  putString(h, 0, 100, name);
  putOctal(h, 100, 8, mode);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, Math.min(size, MAX_OCTAL_SIZE));
  putOctal(h, 136, 12, 0);
  h.fill(0x20, 148, 156); // checksum field counts as spaces
  putString(h, 156, 1, type);
  putString(h, 257, 6, "ustar\0");
  putString(h, 263, 2, "00");
  putString(h, 265, 32, "root");
  putString(h, 297, 32, "root");
  let sum = 0;
  for (const b of h) sum += b;
  putString(h, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

/** One PAX record: "<len> <key>=<value>\n", where <len> counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const b = encoder.encode(body).length;
  let len = b + 1;
  while (len !== b + String(len).length) len = b + String(len).length;
  return `${len}${body}`;
}

export class TarWriter {
  /** Bytes written so far. */
  bytes = 0;

  constructor(private readonly fh: FileHandle) {}

  private async write(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await this.fh.write(b, off, b.length - off);
      off += bytesWritten;
    }
    this.bytes += b.length;
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await this.write(new Uint8Array(BLOCK - rest));
  }

  private async entryHeader(name: string, size: number, type: "0" | "5", mode: number): Promise<void> {
    const records: string[] = [];
    if (encoder.encode(name).length > 100) records.push(paxRecord("path", name));
    if (size > MAX_OCTAL_SIZE) records.push(paxRecord("size", String(size)));
    if (records.length > 0) {
      const pax = encoder.encode(records.join(""));
      await this.write(header("PaxHeader", pax.length, "x", 0o644));
      await this.write(pax);
      await this.pad(pax.length);
    }
    await this.write(header(name, size, type, mode));
  }

  async dir(name: string): Promise<void> {
    await this.entryHeader(name.endsWith("/") ? name : `${name}/`, 0, "5", 0o755);
  }

  /** A regular file of exactly `size` bytes from `body`. */
  async file(name: string, size: number, body: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    await this.entryHeader(name, size, "0", 0o644);
    let written = 0;
    const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = body instanceof Uint8Array ? [body] : body;
    for await (const chunk of chunks) {
      if (written + chunk.length > size) throw new Error(`tar entry ${name}: more than the ${size} bytes announced`);
      await this.write(chunk);
      written += chunk.length;
    }
    if (written !== size) throw new Error(`tar entry ${name}: ${written} bytes instead of the ${size} announced`);
    await this.pad(size);
  }

  /** The end-of-archive marker: two zero blocks. */
  async end(): Promise<void> {
    await this.write(new Uint8Array(2 * BLOCK));
  }
}
