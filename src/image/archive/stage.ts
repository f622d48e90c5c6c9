// Reads an image archive (a tar, plain or gzip/zstd compressed) in one pass and
// stages each regular file into a private temp dir, hashed as it is written, so
// index.json or manifest.json may come anywhere in the archive. Symlinks and
// hardlinks become aliases (docker-save archives link duplicate layers).
//
// The archive is hostile input: an entry whose name or link target leaves the
// archive (absolute, or climbing out with ".."), a device or fifo, too many
// entries, or a blob under blobs/<alg>/<hex> whose content does not hash to its
// name fails the whole load with a message naming the entry.
import { createHash } from "node:crypto";
import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { CribError, invalidArgument, resourceExhausted } from "../../errors.ts";
import { parseDigest } from "../digest.ts";
import { decompressStream, type Compression } from "../layer/decompress.ts";
import { TarReader } from "../layer/tar_reader.ts";

/** Most entries an image archive may have. */
export const MAX_ARCHIVE_ENTRIES = 100_000;
const MAX_LINK_HOPS = 32;

export interface StagedFile {
  /** Where the bytes are now (inside the staging dir). */
  path: string;
  /** sha256 of the content (sha512 for entries under blobs/sha512/). */
  digest: string;
  size: number;
}

/** The compression of a file from its first bytes. */
export function sniffCompression(head: Uint8Array): Compression | "xz" | "bzip2" {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) return "xz";
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return "bzip2";
  return "none";
}

export async function sniffFile(path: string): Promise<Compression | "xz" | "bzip2"> {
  const fh = await open(path, "r");
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return sniffCompression(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/**
 * An entry name made relative to the archive root ("./a//b" -> "a/b"); throws
 * when it is absolute or climbs out. `what` names the archive in the message.
 */
export function cleanArchivePath(name: string, what: string): string {
  if (name.startsWith("/")) throw invalidArgument(`${what}: entry ${JSON.stringify(name)} has an absolute path; an image archive holds relative paths only`);
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) throw invalidArgument(`${what}: entry ${JSON.stringify(name)} climbs out of the archive with ".."; refused`);
      out.pop();
    } else {
      out.push(part);
    }
  }
  return out.join("/");
}

/** The archive's files by cleaned name, and its links. */
export class StagedArchive {
  constructor(
    readonly dir: string,
    readonly what: string,
    private readonly files: Map<string, StagedFile>,
    private readonly links: Map<string, string>,
  ) {}

  /** The file an archive path names, following links inside the archive. */
  get(name: string): StagedFile | undefined {
    let p = cleanArchivePath(name, this.what);
    for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
      const f = this.files.get(p);
      if (f) return f;
      const next = this.links.get(p);
      if (next === undefined) return undefined;
      p = next;
    }
    throw invalidArgument(`${this.what}: ${JSON.stringify(name)} is a chain of more than ${MAX_LINK_HOPS} links`);
  }

  /** A small file (JSON) read into memory; throws when missing or over `max` bytes. */
  async read(name: string, max: number): Promise<Uint8Array> {
    const f = this.get(name);
    if (!f) throw invalidArgument(`${this.what} has no ${name}`);
    if (f.size > max) throw resourceExhausted(`${this.what}: ${name} is ${f.size} bytes, over the ${max} byte limit`);
    return new Uint8Array(await readFile(f.path));
  }

  /** Every file under blobs/<algorithm>/ whose content does not hash to its name. */
  misnamedBlobs(): { name: string; digest: string }[] {
    const bad: { name: string; digest: string }[] = [];
    for (const [name, f] of this.files) {
      const m = /^blobs\/(sha256|sha512)\/([^/]+)$/.exec(name);
      if (m && f.digest !== `${m[1]}:${m[2]}`) bad.push({ name, digest: f.digest });
    }
    return bad;
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function writeAll(fh: Awaited<ReturnType<typeof open>>, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
}

/**
 * Stage every regular file of the archive at `path` into `dir` (which must
 * exist, empty, on the blob store's file system so blobs can be renamed in).
 */
export async function stageArchive(path: string, dir: string, opts: { signal?: AbortSignal; maxEntries?: number } = {}): Promise<StagedArchive> {
  const what = `archive ${path}`;
  const maxEntries = opts.maxEntries ?? MAX_ARCHIVE_ENTRIES;
  const compression = await sniffFile(path);
  if (compression === "xz" || compression === "bzip2") {
    throw invalidArgument(`${what} is ${compression}-compressed; crib reads tar archives plain, gzip- or zstd-compressed`);
  }
  const files = new Map<string, StagedFile>();
  const links = new Map<string, string>();
  const reader = new TarReader(decompressStream(Bun.file(path).stream(), compression));
  let entries = 0;
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const h = await reader.next();
      if (h === null) break;
      if (++entries > maxEntries) throw resourceExhausted(`${what} has more than ${maxEntries} entries`);
      const name = cleanArchivePath(h.path, what);
      switch (h.kind) {
        case "dir":
          break;
        case "symlink": {
          if (h.linkname.startsWith("/")) throw invalidArgument(`${what}: symlink ${JSON.stringify(h.path)} points to the absolute path ${JSON.stringify(h.linkname)}; refused`);
          const parent = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "";
          try {
            links.set(name, cleanArchivePath(parent ? `${parent}/${h.linkname}` : h.linkname, what));
          } catch (e) {
            if (e instanceof CribError) throw invalidArgument(`${what}: symlink ${JSON.stringify(h.path)} -> ${JSON.stringify(h.linkname)} points outside the archive; refused`);
            throw e;
          }
          files.delete(name);
          break;
        }
        case "hardlink":
          links.set(name, cleanArchivePath(h.linkname, what));
          files.delete(name);
          break;
        case "file": {
          const sha512 = name.startsWith("blobs/sha512/");
          const hash = createHash(sha512 ? "sha512" : "sha256");
          const staged = join(dir, String(entries));
          const fh = await open(staged, "wx", 0o600);
          let size = 0;
          try {
            for await (const chunk of reader.body()) {
              await writeAll(fh, chunk);
              hash.update(chunk);
              size += chunk.length;
            }
            await fh.sync();
          } finally {
            await fh.close();
          }
          const digest = `${sha512 ? "sha512" : "sha256"}:${hash.digest("hex")}`;
          files.set(name, { path: staged, digest, size });
          links.delete(name);
          break;
        }
        default:
          throw invalidArgument(`${what}: entry ${JSON.stringify(h.path)} is a ${h.kind} device or fifo; an image archive holds files, directories and links only`);
      }
    }
    await reader.drain();
  } catch (e) {
    await reader.close().catch(() => undefined);
    throw e;
  }
  const staged = new StagedArchive(dir, what, files, links);
  const bad = staged.misnamedBlobs();
  if (bad.length > 0) {
    const b = bad[0]!;
    throw invalidArgument(`${what}: ${b.name} does not match its name: its content hashes to ${b.digest} (${bad.length} such blob${bad.length > 1 ? "s" : ""}); the archive is corrupt or was tampered with`);
  }
  return staged;
}

/** The archive path of a blob in an OCI layout: blobs/<algorithm>/<hex>. */
export function blobPath(digest: string): string {
  const d = parseDigest(digest);
  return `blobs/${d.algorithm}/${d.hex}`;
}
