// Writes tar entries into a fresh, empty layer directory as an overlayfs lower dir.
//
// Safety rests on two facts: the directory is new and only this writer touches it,
// and the writer never follows a symlink. It keeps the set of directories it created
// or found (`dirs`); an entry's parent must be one of them, so no parent is ever a
// symlink, and a final component is created with O_EXCL/mkdir/symlink/link/mknod,
// which never follow one. When the name already exists (a later entry replacing an
// earlier one), the old thing is removed and the create retried. Directory modes and
// times are set at the end, through an fd opened with O_NOFOLLOW.
//
// Speed: metadata calls (create, chown, chmod, times, xattrs) are synchronous. In Bun
// an async fs call costs ~12 µs of overhead on top of a 1-7 µs syscall; measured on a
// 1500-file layer, sync calls unpack 1.7-4x faster than async ones, on tmpfs and on
// ext4, alone or with three layers in parallel. File data goes through async writev
// (it can block for long when the kernel throttles dirty pages), and applyLayer
// yields to the event loop every few milliseconds, so the daemon stays responsive.

import {
  constants as C,
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writev,
  writevSync,
  write,
  writeSync,
  type Stats,
} from "node:fs";
import { errnoCode, internal, invalidArgument, type CribError } from "../../errors.ts";
import type { Logger } from "../../log/logger.ts";
import { S_IFBLK, S_IFCHR, S_IFIFO, mknod } from "../../sys/mknod.ts";
import { futimens, lutimens, type Timespec } from "../../sys/time.ts";
import { lsetxattr } from "../../sys/xattr.ts";
import { baseOf, cleanEntryPath, isWithin, joinRel, parentOf } from "./safe_path.ts";
import type { TarHeader } from "./tar_reader.ts";

const WHITEOUT_PREFIX = ".wh.";
const WHITEOUT_META_PREFIX = ".wh..wh.";
const OPAQUE_MARKER = ".wh..wh..opq";
const OPAQUE_XATTR = "trusted.overlay.opaque";
/** Mode of directories no entry describes (a parent implied by "a/b/c"), as CRI-O uses. */
const IMPLIED_DIR_MODE = 0o755;
/** Gather this much file data before one writev. */
const WRITE_BATCH = 1024 * 1024;
/** Files up to this size are written with one synchronous writev (a page-cache copy). */
const SMALL_FILE = 64 * 1024;

/**
 * Lets the event loop run when synchronous work has held it for `everyMs`: callers
 * `await maybe()` between units of work (it resolves at once most of the time).
 */
export class Pauser {
  private last = performance.now();

  constructor(private readonly everyMs: number) {}

  async maybe(): Promise<void> {
    if (performance.now() - this.last < this.everyMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.last = performance.now();
  }
}

interface DirMeta {
  mode: number;
  atime: Timespec;
  mtime: Timespec;
}

function refuse(h: TarHeader, why: string): CribError {
  return invalidArgument(`layer entry ${JSON.stringify(h.path)}: ${why}`);
}

/** xattrs an image must not set: overlayfs reads them from lower dirs as instructions. */
function hostileXattr(name: string): boolean {
  return name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.");
}

export class LayerWriter {
  /** Directories that exist in the layer, relative paths ("" is the root). */
  private readonly dirs = new Set<string>([""]);
  /** Directory entries whose mode and times are set at the end. */
  private readonly dirMeta = new Map<string, DirMeta>();
  private readonly warned = new Set<string>();

  private constructor(
    private readonly root: string,
    private readonly log: Logger,
  ) {}

  /** A writer for `dir`, which must be an existing, empty directory. */
  static create(dir: string, log: Logger): LayerWriter {
    // Resolve once: the rest compares and builds paths under the real root.
    const root = realpathSync(dir);
    const st = lstatSync(root);
    if (!st.isDirectory()) throw invalidArgument(`layer target ${JSON.stringify(dir)} is not a directory`);
    return new LayerWriter(root, log);
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : `${this.root}/${rel}`;
  }

  /** Writes one entry; `body` yields its data (files only). */
  async write(h: TarHeader, body: AsyncIterable<Uint8Array>): Promise<void> {
    const rel = cleanEntryPath(h.path);
    if (rel === null) throw refuse(h, "path escapes the layer root");
    if (rel === "") {
      // "./" and the like: the layer root's own attributes are not taken from the
      // image (containerd ignores them too).
      this.log.debug("layer entry for the root ignored", { entry: h.path });
      return;
    }
    const base = baseOf(rel);
    const dir = parentOf(rel);
    // AUFS bookkeeping (".wh..wh.plnk/...", ".wh..wh.aufs"): not content.
    if (rel.startsWith(WHITEOUT_META_PREFIX) && rel !== OPAQUE_MARKER) return;
    if (base.startsWith(WHITEOUT_PREFIX)) return this.whiteout(h, dir, base);

    this.ensureDir(dir, h);
    switch (h.kind) {
      case "file":
        return this.file(h, rel, body);
      case "dir":
        return this.dir(h, rel);
      case "symlink":
        return this.symlink(h, rel);
      case "hardlink":
        return this.hardlink(h, rel);
      case "char":
      case "block":
      case "fifo":
        return this.node(h, rel);
    }
  }

  /** Sets the deferred directory modes and times. */
  async finish(pause: Pauser): Promise<void> {
    for (const [rel, meta] of this.dirMeta) {
      await pause.maybe();
      const path = this.abs(rel);
      // Defence in depth: the path must still resolve to itself (no symlink in it).
      if (realpathSync(path) !== path) throw internal(`layer directory ${JSON.stringify(rel)} changed under the unpacker`);
      const fd = openSync(path, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
      try {
        fchmodSync(fd, meta.mode);
        futimens(fd, meta.atime, meta.mtime);
      } finally {
        closeSync(fd);
      }
    }
    this.dirMeta.clear();
  }

  // --- entries -------------------------------------------------------------------

  private async file(h: TarHeader, rel: string, body: AsyncIterable<Uint8Array>): Promise<void> {
    const path = this.abs(rel);
    const fd = this.replacing(rel, () => openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600));
    try {
      if (h.size <= SMALL_FILE) writeSmall(fd, await collect(body), h.size);
      else await writeBody(fd, body);
      fchownSync(fd, h.uid, h.gid);
      // After chown, which clears setuid/setgid; xattrs after chown too, which
      // drops security.capability.
      fchmodSync(fd, h.mode);
      this.xattrs(h, path);
      futimens(fd, h.atime ?? h.mtime, h.mtime);
    } finally {
      closeSync(fd);
    }
  }

  private dir(h: TarHeader, rel: string): void {
    const path = this.abs(rel);
    try {
      mkdirSync(path, 0o700);
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") throw err;
      if (!lstatSync(path).isDirectory()) {
        // A file or symlink of an earlier entry: replaced, never followed.
        unlinkSync(path);
        mkdirSync(path, 0o700);
      }
    }
    this.dirs.add(rel);
    lchownSync(path, h.uid, h.gid);
    this.xattrs(h, path);
    this.dirMeta.set(rel, { mode: h.mode, atime: h.atime ?? h.mtime, mtime: h.mtime });
  }

  private symlink(h: TarHeader, rel: string): void {
    if (h.linkname === "") throw refuse(h, "symlink with an empty target");
    const path = this.abs(rel);
    // The target is stored verbatim: it is only resolved inside the container.
    this.replacing(rel, () => symlinkSync(h.linkname, path));
    lchownSync(path, h.uid, h.gid);
    this.xattrs(h, path);
    lutimens(path, h.atime ?? h.mtime, h.mtime);
  }

  private hardlink(h: TarHeader, rel: string): void {
    const target = cleanEntryPath(h.linkname);
    if (target === null) throw refuse(h, `hardlink target ${JSON.stringify(h.linkname)} escapes the layer root`);
    if (target === "") throw refuse(h, "hardlink to the layer root");
    if (target === rel) return; // a link to itself: the file is already there
    const targetDir = parentOf(target);
    if (!this.dirs.has(targetDir)) {
      throw refuse(h, `hardlink target ${JSON.stringify(h.linkname)} is not in this layer (${this.describe(targetDir)})`);
    }
    const st = lstatOrNull(this.abs(target));
    if (st === null) throw refuse(h, `hardlink target ${JSON.stringify(h.linkname)} does not exist in this layer`);
    if (st.isDirectory()) throw refuse(h, `hardlink target ${JSON.stringify(h.linkname)} is a directory`);
    // A 0/0 char device here is a whiteout this writer made, not an entry of the layer.
    if (st.isCharacterDevice() && st.rdev === 0) throw refuse(h, `hardlink target ${JSON.stringify(h.linkname)} is a whiteout`);
    // Files, and also symlinks, fifos and device nodes (tar allows links to any of
    // them; containerd and CRI-O apply them). link(2) does not follow a symlink: the new
    // name is the symlink's inode, and the writer never chmods or chowns through a
    // hardlink, so a link to a symlink pointing out of the layer reaches nothing.
    this.replacing(rel, () => linkSync(this.abs(target), this.abs(rel)));
  }

  private node(h: TarHeader, rel: string): void {
    const path = this.abs(rel);
    const type = h.kind === "char" ? S_IFCHR : h.kind === "block" ? S_IFBLK : S_IFIFO;
    this.replacing(rel, () => mknod(path, type | 0o600, h.devmajor, h.devminor));
    lchownSync(path, h.uid, h.gid);
    // chmod follows symlinks, but `path` is the node just made, in a checked directory.
    chmodSync(path, h.mode);
    this.xattrs(h, path);
    lutimens(path, h.atime ?? h.mtime, h.mtime);
  }

  /**
   * "dir/.wh.name" → a 0/0 char device "dir/name"; "dir/.wh..wh..opq" → dir marked
   * opaque. Both only hide what lower layers hold: an entry of this same layer with
   * that name wins over the whiteout (OCI image spec, "Whiteouts").
   */
  private whiteout(h: TarHeader, dir: string, base: string): void {
    if (base === OPAQUE_MARKER) {
      this.ensureDir(dir, h);
      lsetxattr(this.abs(dir), OPAQUE_XATTR, new TextEncoder().encode("y"));
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) return; // other AUFS metadata
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === "" || name === "." || name === "..") throw refuse(h, "invalid whiteout name");
    this.ensureDir(dir, h);
    const rel = joinRel(dir, name);
    const path = this.abs(rel);
    if (lstatOrNull(path) !== null) {
      this.log.debug("whiteout of an entry of the same layer ignored", { entry: h.path });
      return;
    }
    mknod(path, S_IFCHR, 0, 0);
    lutimens(path, h.atime ?? h.mtime, h.mtime);
  }

  // --- helpers -------------------------------------------------------------------

  /** Makes sure directory `rel` exists (creating missing ones) with no symlink on the way. */
  private ensureDir(rel: string, h: TarHeader): void {
    if (this.dirs.has(rel)) return;
    let cur = "";
    for (const part of rel.split("/")) {
      cur = joinRel(cur, part);
      if (this.dirs.has(cur)) continue;
      const path = this.abs(cur);
      try {
        mkdirSync(path, IMPLIED_DIR_MODE);
        chmodSync(path, IMPLIED_DIR_MODE); // whatever the umask
      } catch (err) {
        if (errnoCode(err) !== "EEXIST") throw err;
        const st = lstatSync(path);
        if (st.isSymbolicLink()) throw refuse(h, `parent ${JSON.stringify(cur)} is a symlink`);
        if (!st.isDirectory()) throw refuse(h, `parent ${JSON.stringify(cur)} is not a directory`);
      }
      this.dirs.add(cur);
    }
  }

  /** Runs `create`; if the name exists, removes what is there (a directory recursively) and retries. */
  private replacing<T>(rel: string, create: () => T): T {
    try {
      return create();
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") throw err;
    }
    const path = this.abs(rel);
    if (lstatSync(path).isDirectory()) {
      rmSync(path, { recursive: true, force: true });
      this.forgetTree(rel);
    } else {
      unlinkSync(path);
    }
    return create();
  }

  /** Drops a removed directory and everything below it from the bookkeeping. */
  private forgetTree(rel: string): void {
    for (const d of this.dirs) if (d !== "" && isWithin(d, rel)) this.dirs.delete(d);
    for (const d of this.dirMeta.keys()) if (isWithin(d, rel)) this.dirMeta.delete(d);
  }

  /** Why `rel` is not a usable directory, for an error message. */
  private describe(rel: string): string {
    let cur = "";
    for (const part of rel.split("/")) {
      cur = joinRel(cur, part);
      const st = lstatOrNull(this.abs(cur));
      if (st === null) return `${JSON.stringify(cur)} does not exist`;
      if (st.isSymbolicLink()) return `${JSON.stringify(cur)} is a symlink`;
      if (!st.isDirectory()) return `${JSON.stringify(cur)} is not a directory`;
    }
    return `${JSON.stringify(rel)} is not a directory of this layer`;
  }

  private xattrs(h: TarHeader, path: string): void {
    for (const [name, value] of h.xattrs) {
      if (hostileXattr(name)) {
        this.warnOnce(`hostile:${name}`, "xattr from the image ignored: overlayfs would obey it", { entry: h.path, xattr: name });
        continue;
      }
      try {
        lsetxattr(path, name, value);
      } catch (err) {
        const code = errnoCode(err);
        // Not supported by this file system, or user.* on a symlink or device (the
        // kernel allows those on files and directories only): skip, as containerd does.
        const userOnSpecial = code === "EPERM" && name.startsWith("user.") && h.kind !== "file" && h.kind !== "dir";
        if (code === "EOPNOTSUPP" || userOnSpecial) {
          this.warnOnce(`unsupported:${name}`, "xattr from the image not supported here, ignored", { entry: h.path, xattr: name, error: code });
          continue;
        }
        throw err;
      }
    }
  }

  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(msg, fields);
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  }
}

const writevAsync = (fd: number, parts: Uint8Array[]): Promise<number> =>
  new Promise((resolve, reject) => writev(fd, parts, (err, n) => (err ? reject(err) : resolve(n))));
const writeAsync = (fd: number, part: Uint8Array): Promise<number> =>
  new Promise((resolve, reject) => write(fd, part, (err, n) => (err ? reject(err) : resolve(n))));

/** Most buffers in one writev (IOV_MAX is 1024 on Linux). */
const MAX_PARTS = 256;

async function collect(body: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  for await (const chunk of body) parts.push(chunk);
  return parts.length > MAX_PARTS ? [Buffer.concat(parts)] : parts;
}

/** What is left of `parts` after the first `written` bytes (after a short write). */
function rest(parts: Uint8Array[], written: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    if (written >= p.length) {
      written -= p.length;
      continue;
    }
    out.push(p.subarray(written));
    written = 0;
  }
  return out;
}

function writeSmall(fd: number, parts: Uint8Array[], size: number): void {
  if (size === 0) return;
  const written = writevSync(fd, parts);
  if (written === size) return;
  for (let view of rest(parts, written)) {
    while (view.length > 0) view = view.subarray(writeSync(fd, view));
  }
}

/** Writes the data in batches of up to WRITE_BATCH bytes, one async writev each. */
async function writeBody(fd: number, body: AsyncIterable<Uint8Array>): Promise<void> {
  let batch: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    batch.push(chunk);
    size += chunk.length;
    if (size >= WRITE_BATCH || batch.length >= MAX_PARTS) {
      await writeAll(fd, batch, size);
      batch = [];
      size = 0;
    }
  }
  if (size > 0) await writeAll(fd, batch, size);
}

async function writeAll(fd: number, parts: Uint8Array[], size: number): Promise<void> {
  const written = await writevAsync(fd, parts);
  if (written === size) return;
  // A short write (rare on regular files): write the rest piece by piece.
  for (let view of rest(parts, written)) {
    while (view.length > 0) view = view.subarray(await writeAsync(fd, view));
  }
}
