// A streaming tar reader for layer blobs: ustar, GNU (long names, base-256 numbers)
// and PAX (path, linkpath, size, ids, times with nanoseconds, SCHILY.xattr.*).
//
// Why not node-tar's Parser: for layers it loses data. Its PAX parser drops every
// SCHILY.xattr.* record (file capabilities) and decodes PAX bodies as UTF-8 (a binary
// security.capability value is mangled), keeps times as Date (milliseconds), and its
// header decoder reads devmajor/devminor only for POSIX "ustar\0" magic, so a GNU
// format /dev/null becomes a 0/0 char device: an overlay whiteout. It also sniffs
// gzip/zstd/brotli inside data we already decompressed. Framing here follows Go's
// archive/tar, which produced and reads nearly every layer: header-only types carry
// no data whatever their size field says, global PAX headers are ignored (as
// containerd does), and a lone zero block or clean EOF ends the archive.

import { invalidArgument } from "../../errors.ts";
import type { Timespec } from "../../sys/time.ts";

const BLOCK = 512;
/** Largest PAX or GNU long-name body we accept: real ones are a few hundred bytes. */
const MAX_META_SIZE = 1024 * 1024;

export type TarEntryKind = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface TarHeader {
  /** The name as the archive gives it (after PAX/GNU overrides), not cleaned. */
  path: string;
  kind: TarEntryKind;
  /** Permission bits incl. setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (0 for every kind but "file"). */
  size: number;
  mtime: Timespec;
  /** From PAX or GNU headers when present. */
  atime?: Timespec;
  /** Symlink or hardlink target. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records, values byte-exact. */
  xattrs: Array<[string, Uint8Array]>;
  /** Byte offset of the entry's header in the uncompressed stream (for messages). */
  offset: number;
}

/** Pulls bytes from an async iterator of chunks without copying when it can. */
class ChunkSource {
  private chunk: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private ended = false;
  /** Bytes handed out so far. */
  consumed = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      this.chunk = r.value;
      this.pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes (a view into the current chunk), or null at the end. */
  async some(max: number): Promise<Uint8Array | null> {
    if (this.pos >= this.chunk.length && !(await this.fill())) return null;
    const n = Math.min(max, this.chunk.length - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.consumed += n;
    return out;
  }

  /** Exactly `n` bytes; fewer (possibly 0) only when the stream ends first. */
  async exact(n: number): Promise<Uint8Array> {
    const first = await this.some(n);
    if (first === null) return new Uint8Array(0);
    if (first.length === n) return first;
    const out = new Uint8Array(n);
    out.set(first, 0);
    let have = first.length;
    while (have < n) {
      const more = await this.some(n - have);
      if (more === null) return out.subarray(0, have);
      out.set(more, have);
      have += more.length;
    }
    return out;
  }

  /** Skips `n` bytes; returns how many were there. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const got = await this.some(left);
      if (got === null) break;
      left -= got.length;
    }
    return n - left;
  }

  /** Reads to the end, discarding. */
  async drain(): Promise<void> {
    while ((await this.some(Number.MAX_SAFE_INTEGER)) !== null) {
      // discard
    }
  }

  async close(): Promise<void> {
    this.ended = true;
    await this.it.return?.();
  }
}

const utf8 = new TextDecoder("utf-8");
const latin1 = new TextDecoder("latin1");

/** A NUL-terminated string field. */
function str(b: Uint8Array, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const nul = f.indexOf(0);
  return utf8.decode(nul < 0 ? f : f.subarray(0, nul));
}

/** A numeric field: octal ASCII, or GNU base-256 when the high bit of the first byte is set. */
function num(b: Uint8Array, off: number, len: number, what: string): number {
  const f = b.subarray(off, off + len);
  if (f.length > 0 && (f[0]! & 0x80) !== 0) {
    const negative = (f[0]! & 0x40) !== 0;
    let v = 0n;
    for (let i = 0; i < f.length; i++) {
      let c = f[i]!;
      if (negative) c ^= 0xff;
      if (i === 0) c &= 0x7f;
      v = (v << 8n) | BigInt(c);
    }
    if (negative) v = -v - 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new TarFormatError(`${what} field out of range`);
    }
    return Number(v);
  }
  // Octal, padded with spaces or NULs on either side.
  let s = 0;
  let e = f.length;
  while (s < e && (f[s] === 0x20 || f[s] === 0)) s++;
  while (e > s && (f[e - 1] === 0x20 || f[e - 1] === 0)) e--;
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = f[i]!;
    if (c < 0x30 || c > 0x37) throw new TarFormatError(`${what} field is not octal: ${JSON.stringify(latin1.decode(f))}`);
    v = v * 8 + (c - 0x30);
  }
  if (!Number.isSafeInteger(v)) throw new TarFormatError(`${what} field out of range`);
  return v;
}

/** Header checksum: historic writers summed signed bytes, so accept either sum. */
function checksumOk(b: Uint8Array): boolean {
  let want: number;
  try {
    want = num(b, 148, 8, "checksum");
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** A malformed archive; the reader adds the offset and turns it into a CribError. */
class TarFormatError extends Error {}

/** "1577836800.123456789" (or "-1.5") → seconds and nanoseconds. */
function parsePaxTime(v: string, key: string): Timespec {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (m === null) throw new TarFormatError(`PAX ${key} is not a time: ${JSON.stringify(v)}`);
  const whole = Number(m[2]);
  if (!Number.isSafeInteger(whole)) throw new TarFormatError(`PAX ${key} out of range: ${JSON.stringify(v)}`);
  const frac = Number(((m[3] ?? "") + "000000000").slice(0, 9));
  if (m[1] !== "-") return { sec: whole, nsec: frac };
  return frac === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1e9 - frac };
}

function parsePaxInt(v: string, key: string): number {
  if (!/^\d+$/.test(v)) throw new TarFormatError(`PAX ${key} is not a number: ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`PAX ${key} out of range: ${v}`);
  return n;
}

interface Pax {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: Timespec;
  atime?: Timespec;
  xattrs: Array<[string, Uint8Array]>;
}

const XATTR_PREFIX = "SCHILY.xattr.";

/** PAX records "<len> <key>=<value>\n", values kept as bytes (xattrs are binary). */
function parsePax(body: Uint8Array): Pax {
  const pax: Pax = { xattrs: [] };
  let pos = 0;
  while (pos < body.length) {
    // A NUL pads some writers' bodies; nothing follows it.
    if (body[pos] === 0) break;
    const sp = body.indexOf(0x20, pos);
    if (sp < 0 || sp - pos > 20) throw new TarFormatError("malformed PAX record length");
    const len = Number(latin1.decode(body.subarray(pos, sp)));
    if (!Number.isSafeInteger(len) || len <= sp - pos + 1 || pos + len > body.length || body[pos + len - 1] !== 0x0a) {
      throw new TarFormatError("malformed PAX record");
    }
    const rec = body.subarray(sp + 1, pos + len - 1);
    pos += len;
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError("malformed PAX record (no key)");
    const key = utf8.decode(rec.subarray(0, eq));
    const raw = rec.subarray(eq + 1);
    if (key.startsWith(XATTR_PREFIX)) {
      // Copy: the body may be a view of a chunk the reader moves past.
      pax.xattrs.push([key.slice(XATTR_PREFIX.length), raw.slice()]);
      continue;
    }
    if (key.startsWith("GNU.sparse.")) throw new TarFormatError("GNU sparse files are not supported");
    const value = utf8.decode(raw);
    // An empty value means "no override" (POSIX: the keyword is deleted).
    if (value === "") continue;
    switch (key) {
      case "path":
      case "linkpath":
        if (value.includes("\0")) throw new TarFormatError(`PAX ${key} contains a NUL byte`);
        pax[key] = value;
        break;
      case "size":
      case "uid":
      case "gid":
        pax[key] = parsePaxInt(value, key);
        break;
      case "mtime":
      case "atime":
        pax[key] = parsePaxTime(value, key);
        break;
      default:
        // uname, gname, ctime, comment, charset, vendor keys: not used.
        break;
    }
  }
  return pax;
}

const KINDS: Record<string, TarEntryKind> = {
  "0": "file",
  "\0": "file",
  "7": "file", // contiguous file: a regular file everywhere but a few old Unixes
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

/** Reads one entry at a time; the body of the current entry is read with body(). */
export class TarReader {
  private readonly src: ChunkSource;
  /** Data bytes of the current entry not yet read, and its padding. */
  private remaining = 0;
  private padding = 0;
  private current: TarHeader | undefined;
  private done = false;

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.src = new ChunkSource(chunks[Symbol.asyncIterator]());
  }

  /** The next entry, or null at the end of the archive. Skips what is left of the previous body. */
  async next(): Promise<TarHeader | null> {
    if (this.done) return null;
    await this.skipRest();
    let pax: Pax | undefined;
    let longName: string | undefined;
    let longLink: string | undefined;
    for (;;) {
      const offset = this.src.consumed;
      const block = await this.src.exact(BLOCK);
      if (block.length === 0 && pax === undefined && longName === undefined && longLink === undefined) {
        // Clean EOF at a header boundary ends the archive (Go does the same).
        this.done = true;
        return null;
      }
      if (block.length < BLOCK) throw this.formatError("truncated tar: the stream ends inside a header", offset);
      if (isZero(block)) {
        const second = await this.src.exact(BLOCK);
        if (second.length === BLOCK && !isZero(second)) {
          throw this.formatError("invalid tar: a header follows a zero block", offset + BLOCK);
        }
        this.done = true;
        return null;
      }
      if (!checksumOk(block)) {
        throw this.formatError(offset === 0 ? "not a tar archive (bad header checksum)" : "invalid tar header checksum", offset);
      }
      let h: TarHeader;
      try {
        h = this.decode(block, offset, pax, longName, longLink);
      } catch (err) {
        if (err instanceof TarFormatError) throw this.formatError(err.message, offset);
        throw err;
      }
      const flag = String.fromCharCode(block[156]!);
      if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
        const size = h.size;
        if (size > MAX_META_SIZE) throw this.formatError(`tar metadata entry of ${size} bytes is too large`, offset);
        const body = await this.src.exact(size);
        if (body.length < size) throw this.formatError("truncated tar: the stream ends inside a metadata entry", offset);
        await this.skipExact(pad(size), offset);
        try {
          if (flag === "x") pax = parsePax(body);
          else if (flag === "g") parsePax(body); // validated, then ignored as containerd does
          else if (flag === "L") longName = cString(body);
          else longLink = cString(body);
        } catch (err) {
          if (err instanceof TarFormatError) throw this.formatError(err.message, offset);
          throw err;
        }
        continue;
      }
      this.current = h;
      this.remaining = h.size;
      this.padding = pad(h.size);
      return h;
    }
  }

  /** The data of the current entry, as views into the stream's chunks. */
  async *body(): AsyncGenerator<Uint8Array> {
    while (this.remaining > 0) {
      const chunk = await this.src.some(this.remaining);
      if (chunk === null) {
        const name = this.current?.path ?? "";
        throw invalidArgument(`truncated tar: entry ${JSON.stringify(name)} ends ${this.remaining} bytes short`);
      }
      this.remaining -= chunk.length;
      yield chunk;
    }
  }

  /** Reads what follows the end-of-archive marker (so a digest covers every byte). */
  async drain(): Promise<void> {
    await this.src.drain();
  }

  /** Stops reading; the underlying iterator is closed. */
  async close(): Promise<void> {
    await this.src.close();
  }

  private async skipRest(): Promise<void> {
    if (this.remaining + this.padding === 0) return;
    const name = this.current?.path ?? "";
    const want = this.remaining + this.padding;
    const got = await this.src.skip(want);
    // Missing padding after the last entry is tolerated; missing data is not.
    if (got < this.remaining) {
      throw invalidArgument(`truncated tar: entry ${JSON.stringify(name)} ends ${this.remaining - got} bytes short`);
    }
    this.remaining = 0;
    this.padding = 0;
  }

  private async skipExact(n: number, offset: number): Promise<void> {
    if ((await this.src.skip(n)) < n) throw this.formatError("truncated tar", offset);
  }

  private formatError(msg: string, offset: number): Error {
    return invalidArgument(`${msg} at byte ${offset} of the uncompressed layer`);
  }

  private decode(b: Uint8Array, offset: number, pax: Pax | undefined, longName: string | undefined, longLink: string | undefined): TarHeader {
    const flag = String.fromCharCode(b[156]!);
    const magic = latin1.decode(b.subarray(257, 265));
    const ustar = magic === "ustar\x0000";
    const gnu = magic === "ustar  \0";
    let name = str(b, 0, 100);
    if (ustar) {
      // star archives end the block with "tar\0" and keep a shorter prefix.
      const star = b[508] === 0x74 && b[509] === 0x61 && b[510] === 0x72 && b[511] === 0;
      const prefix = str(b, 345, star ? 131 : 155);
      if (prefix !== "") name = `${prefix}/${name}`;
    }
    const size = num(b, 124, 12, "size");
    const meta = flag === "x" || flag === "g" || flag === "L" || flag === "K";
    if (meta) {
      return { path: name, kind: "file", mode: 0, uid: 0, gid: 0, size, mtime: { sec: 0, nsec: 0 }, linkname: "", devmajor: 0, devminor: 0, xattrs: [], offset };
    }
    let kind = KINDS[flag];
    if (kind === undefined) {
      const what = flag === "S" ? "GNU sparse file" : `entry type ${JSON.stringify(flag)}`;
      throw new TarFormatError(`unsupported ${what} for ${JSON.stringify(pax?.path ?? longName ?? name)}`);
    }
    const path = pax?.path ?? longName ?? name;
    // Old (V7) archives mark directories with a trailing slash on a plain file.
    if (flag === "\0" && path.endsWith("/")) kind = "dir";
    let atime: Timespec | undefined = pax?.atime;
    if (atime === undefined && gnu) {
      const a = num(b, 345, 12, "atime");
      if (a !== 0) atime = { sec: a, nsec: 0 };
    }
    const hasDev = ustar || gnu;
    const h: TarHeader = {
      path,
      kind,
      mode: num(b, 100, 8, "mode") & 0o7777,
      uid: pax?.uid ?? num(b, 108, 8, "uid"),
      gid: pax?.gid ?? num(b, 116, 8, "gid"),
      // Only regular files carry data (Go ignores the size of other types).
      size: kind === "file" ? (pax?.size ?? size) : 0,
      mtime: pax?.mtime ?? { sec: num(b, 136, 12, "mtime"), nsec: 0 },
      linkname: pax?.linkpath ?? longLink ?? str(b, 157, 100),
      devmajor: hasDev && (kind === "char" || kind === "block") ? num(b, 329, 8, "devmajor") : 0,
      devminor: hasDev && (kind === "char" || kind === "block") ? num(b, 337, 8, "devminor") : 0,
      xattrs: pax?.xattrs ?? [],
      offset,
    };
    if (atime !== undefined) h.atime = atime;
    if (path === "") throw new TarFormatError("entry with an empty name");
    if (path.includes("\0") || h.linkname.includes("\0")) throw new TarFormatError("name contains a NUL byte");
    return h;
  }
}

function pad(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

function cString(body: Uint8Array): string {
  const nul = body.indexOf(0);
  return utf8.decode(nul < 0 ? body : body.subarray(0, nul));
}
