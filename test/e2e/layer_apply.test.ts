// applyLayer against real files, as root (chown, mknod, trusted.* and security.*
// xattrs need it). Every breakout case runs in a temp dir laid out as
//
//   base/sentinel/...   files a breakout would hit (absolute symlinks point here)
//   base/outside        a file next to the target
//   base/layer/         the target
//
// and asserts both the error (naming the entry) and that everything in base/ but
// layer/ is byte-for-byte, mode-for-mode unchanged.

import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { CribError } from "../../src/errors.ts";
import { applyLayer, type ApplyResult, type Compression } from "../../src/image/layer/apply.ts";
import { major, minor, mknod, S_IFCHR } from "../../src/sys/mknod.ts";
import { lgetxattr, llistxattr, lsetxattr } from "../../src/sys/xattr.ts";
import { setLogSink } from "../../src/log/logger.ts";
import { TarReader, type TarHeader } from "../../src/image/layer/tar_reader.ts";
import { tarBytes, type TarEntry } from "../helpers/tar.ts";

const isRoot = process.getuid?.() === 0;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Bed {
  base: string;
  target: string;
  sentinel: string;
}

const beds: string[] = [];
afterEach(() => {
  for (const b of beds.splice(0)) rmSync(b, { recursive: true, force: true });
});

// Keep the layer writer's warnings out of the test output.
setLogSink(() => undefined);

function bed(): Bed {
  const base = mkdtempSync(join(tmpdir(), "crib-layer-"));
  beds.push(base);
  const sentinel = join(base, "sentinel");
  mkdirSync(join(sentinel, "sub"), { recursive: true });
  writeFileSync(join(sentinel, "victim"), "precious");
  writeFileSync(join(sentinel, "shadow"), "secret");
  chmodSync(join(sentinel, "shadow"), 0o600);
  writeFileSync(join(sentinel, "sub", "inner"), "inner");
  writeFileSync(join(base, "outside"), "outside");
  const target = join(base, "layer");
  mkdirSync(target);
  return { base, target, sentinel };
}

/**
 * A digest of everything under `dir` except `skip`: names, types, modes, owners,
 * times, contents, xattrs. `dirTimes: false` leaves out directory mtimes (those of
 * directories a layer only implies are the time of the apply).
 */
function treeHash(dir: string, skip: string, dirTimes = true): string {
  const h = createHash("sha256");
  const walk = (p: string): void => {
    const st = lstatSync(p, { bigint: true });
    const mtime = st.isDirectory() && !dirTimes ? 0n : st.mtimeNs;
    h.update(`${p.slice(dir.length)}\0${st.mode}\0${st.uid}:${st.gid}\0${st.size}\0${mtime}\0${st.nlink}\0${st.rdev}\0`);
    for (const x of llistxattr(p).sort()) h.update(`${x}=${Buffer.from(lgetxattr(p, x) ?? new Uint8Array()).toString("hex")}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isFile()) h.update(readFileSync(p));
    else if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        const child = join(p, name);
        if (child !== skip) walk(child);
      }
    }
  };
  walk(dir);
  return h.digest("hex");
}

async function apply(target: string, entries: TarEntry[] | Uint8Array, compression: Compression = "none", opts = {}): Promise<ApplyResult> {
  const tar = entries instanceof Uint8Array ? entries : tarBytes(entries);
  const data =
    compression === "gzip" ? zlib.gzipSync(tar)
    : compression === "zstd" ? zlib.zstdCompressSync(tar)
    : tar;
  return applyLayer([data], compression, target, opts);
}

async function failure(p: Promise<unknown>): Promise<CribError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CribError) return err;
    throw err;
  }
  throw new Error("expected the apply to fail");
}

/** The apply fails with invalid_argument naming `entry`, and nothing outside the target changed. */
async function expectRefused(entries: TarEntry[], entry: string, b: Bed = bed()): Promise<CribError> {
  const before = treeHash(b.base, b.target);
  const err = await failure(apply(b.target, entries));
  expect(err.kind).toBe("invalid_argument");
  expect(err.message).toContain(`layer entry ${JSON.stringify(entry)}`);
  expect(treeHash(b.base, b.target)).toBe(before);
  return err;
}

/** The apply succeeds and nothing outside the target changed. */
async function expectContained(entries: TarEntry[], b: Bed = bed()): Promise<Bed> {
  const before = treeHash(b.base, b.target);
  await apply(b.target, entries);
  expect(treeHash(b.base, b.target)).toBe(before);
  return b;
}

const sha256 = (data: Uint8Array): string => `sha256:${createHash("sha256").update(data).digest("hex")}`;

// security.capability v2: cap_net_raw (bit 13) permitted, effective flag set.
const CAP_NET_RAW = String.fromCharCode(1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

describe.skipIf(!isRoot)("applyLayer: a normal layer", () => {
  const entries: TarEntry[] = [
    { type: "dir", path: "./", mode: 0o755 },
    { type: "dir", path: "bin/", mode: 0o755, mtime: 1600000000 },
    { type: "file", path: "bin/tool", data: "#!/bin/sh\necho hi\n", mode: 0o4755, uid: 0, gid: 0, mtime: 1577836800.123456, xattrs: { "security.capability": CAP_NET_RAW, "user.note": "hello" } },
    { type: "hardlink", path: "bin/tool-link", target: "bin/tool" },
    { type: "symlink", path: "bin/sh", target: "tool", uid: 1000, gid: 1001, mtime: 1500000000 },
    { type: "symlink", path: "abs-link", target: "/etc/passwd" },
    { type: "dir", path: "home/user/", mode: 0o2750, uid: 1000, gid: 1000, mtime: 1600000001 },
    { type: "file", path: "home/user/data", data: "x".repeat(70000), mode: 0o640, uid: 1000, gid: 1000 },
    { type: "dir", path: "tmp/", mode: 0o1777, mtime: 1600000002 },
    { type: "dir", path: "ro/", mode: 0o555, mtime: 1600000003 },
    { type: "file", path: "ro/child", data: "inside a read-only dir", mode: 0o444 },
    { type: "char", path: "dev/null", major: 1, minor: 3, mode: 0o666 },
    { type: "block", path: "dev/loop0", major: 7, minor: 0, mode: 0o660 },
    { type: "fifo", path: "run/fifo", mode: 0o620 },
    { type: "file", path: "implied/deep/file", data: "parents not listed" },
    { type: "file", path: "replaced", data: "first" },
    { type: "file", path: "replaced", data: "second", mode: 0o600 },
    { type: "dir", path: "hostile/", xattrs: { "trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc", "user.ok": "1" } },
    { type: "file", path: `long/${"n".repeat(150)}/${"f".repeat(120)}`, data: "long name via PAX" },
  ];

  test("owners, modes, setuid/setgid/sticky, mtimes, xattrs, links, devices, fifo", async () => {
    const { target } = bed();
    const tar = tarBytes(entries);
    const r = await apply(target, tar);
    expect(r.diffID).toBe(sha256(tar));
    expect(r.bytes).toBe(tar.length);
    expect(r.entries).toBe(entries.length);

    const st = (p: string) => lstatSync(join(target, p), { bigint: true });
    const tool = st("bin/tool");
    expect(tool.isFile()).toBe(true);
    expect(Number(tool.mode) & 0o7777).toBe(0o4755);
    expect(tool.mtimeNs).toBe(1577836800123456000n);
    expect(readFileSync(join(target, "bin/tool"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(lgetxattr(join(target, "bin/tool"), "security.capability")).toEqual(enc.encode(CAP_NET_RAW));
    expect(dec.decode(lgetxattr(join(target, "bin/tool"), "user.note"))).toBe("hello");

    const link = st("bin/tool-link");
    expect(link.ino).toBe(tool.ino);
    expect(tool.nlink).toBe(2n);

    const sh = st("bin/sh");
    expect(sh.isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(target, "bin/sh"))).toBe("tool");
    expect([sh.uid, sh.gid]).toEqual([1000n, 1001n]);
    expect(sh.mtimeNs).toBe(1500000000000000000n);
    expect(readlinkSync(join(target, "abs-link"))).toBe("/etc/passwd");

    const home = st("home/user");
    expect(Number(home.mode) & 0o7777).toBe(0o2750);
    expect([home.uid, home.gid]).toEqual([1000n, 1000n]);
    expect(home.mtimeNs).toBe(1600000001000000000n);
    const data = st("home/user/data");
    expect(Number(data.mode) & 0o7777).toBe(0o640);
    expect(data.size).toBe(70000n);

    expect(Number(st("tmp").mode) & 0o7777).toBe(0o1777);
    expect(Number(st("ro").mode) & 0o7777).toBe(0o555);
    expect(st("ro").mtimeNs).toBe(1600000003000000000n);
    expect(readFileSync(join(target, "ro/child"), "utf8")).toBe("inside a read-only dir");
    expect(st("bin").mtimeNs).toBe(1600000000000000000n);

    const nul = st("dev/null");
    expect(nul.isCharacterDevice()).toBe(true);
    expect([major(nul.rdev), minor(nul.rdev)]).toEqual([1, 3]);
    expect(Number(nul.mode) & 0o7777).toBe(0o666);
    const loop = st("dev/loop0");
    expect(loop.isBlockDevice()).toBe(true);
    expect([major(loop.rdev), minor(loop.rdev)]).toEqual([7, 0]);
    const fifo = st("run/fifo");
    expect(fifo.isFIFO()).toBe(true);
    expect(Number(fifo.mode) & 0o7777).toBe(0o620);

    expect(Number(st("implied").mode) & 0o7777).toBe(0o755);
    expect(Number(st("implied/deep").mode) & 0o7777).toBe(0o755);
    expect(readFileSync(join(target, "replaced"), "utf8")).toBe("second");

    const hostile = llistxattr(join(target, "hostile"));
    expect(hostile).toContain("user.ok");
    expect(hostile.filter((x) => x.startsWith("trusted.overlay."))).toEqual([]);

    expect(readFileSync(join(target, `long/${"n".repeat(150)}/${"f".repeat(120)}`), "utf8")).toBe("long name via PAX");
  });

  test("gzip, zstd and none give the same tree and the same diffID", async () => {
    const tar = tarBytes(entries);
    const hashes: string[] = [];
    for (const c of ["none", "gzip", "zstd"] as const) {
      const { target } = bed();
      const r = await apply(target, tar, c);
      expect(r.diffID).toBe(sha256(tar));
      hashes.push(treeHash(target, "", false));
    }
    expect(hashes[1]).toBe(hashes[0]!);
    expect(hashes[2]).toBe(hashes[0]!);
  });

  test("any chunking of the input, and a ReadableStream input", async () => {
    const tar = tarBytes(entries);
    const gz = zlib.gzipSync(tar);
    const tiny: Uint8Array[] = [];
    for (let i = 0; i < tar.length; i += 7) tiny.push(tar.subarray(i, i + 7));
    const a = bed();
    expect((await applyLayer(tiny, "none", a.target)).diffID).toBe(sha256(tar));
    const b = bed();
    expect((await applyLayer(new Blob([gz]).stream(), "gzip", b.target)).diffID).toBe(sha256(tar));
    expect(treeHash(a.target, "")).not.toBe("");
    expect(existsSync(join(b.target, "bin/tool"))).toBe(true);
  });

  test("a GNU-format tar from GNU tar: long names, devices, binary capability xattr", async () => {
    const b = bed();
    const src = join(b.base, "gnu-src");
    const long = `${"d".repeat(120)}/${"l".repeat(130)}`;
    mkdirSync(join(src, "dev"), { recursive: true });
    mkdirSync(join(src, "d".repeat(120)), { recursive: true });
    writeFileSync(join(src, long), "long");
    mknod(join(src, "dev", "null"), S_IFCHR | 0o666, 1, 3);
    const tool = join(src, "tool");
    writeFileSync(tool, "tool");
    // cap_setuid (bit 7) makes a 0x80 byte: not valid UTF-8, must survive byte-exact.
    const cap = new Uint8Array([1, 0, 0, 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    lsetxattr(tool, "security.capability", cap);
    for (const format of ["gnu", "posix"]) {
      const tarFile = join(b.base, `${format}.tar`);
      const res = spawnSync("tar", [`--format=${format}`, "--xattrs", "--xattrs-include=*", "--numeric-owner", "-cf", tarFile, "-C", src, "."]);
      expect(res.status).toBe(0);
      const target = join(b.base, `out-${format}`);
      mkdirSync(target);
      const tar = readFileSync(tarFile);
      const r = await applyLayer([tar], "none", target);
      expect(r.diffID).toBe(sha256(tar));
      expect(readFileSync(join(target, long), "utf8")).toBe("long");
      const nul = lstatSync(join(target, "dev", "null"));
      expect(nul.isCharacterDevice()).toBe(true);
      expect([major(nul.rdev), minor(nul.rdev)]).toEqual([1, 3]);
      // GNU format has no xattrs; POSIX (PAX) carries them.
      if (format === "posix") expect(lgetxattr(join(target, "tool"), "security.capability")).toEqual(cap);
    }
  });
});

describe.skipIf(!isRoot)("applyLayer: whiteouts", () => {
  test("'.wh.name' becomes a 0/0 char device; '.wh..wh..opq' the opaque xattr", async () => {
    const { target } = bed();
    await apply(target, [
      { type: "dir", path: "etc/" },
      { type: "file", path: "etc/.wh.passwd" },
      { type: "file", path: ".wh.toplevel" },
      { type: "dir", path: "opq/" },
      { type: "file", path: "opq/.wh..wh..opq" },
      { type: "file", path: "opq/keep", data: "kept" },
      { type: "file", path: "newdir/.wh..wh..opq" },
      { type: "file", path: ".wh..wh.plnk/123", data: "aufs" },
      { type: "file", path: "x/.wh..wh.aufs" },
      { type: "file", path: "same", data: "same layer wins" },
      { type: "file", path: ".wh.same" },
      { type: "file", path: "deep/er/.wh.gone" },
    ]);
    for (const p of ["etc/passwd", "toplevel", "deep/er/gone"]) {
      const st = lstatSync(join(target, p));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe(0);
      expect(st.mode & 0o7777).toBe(0);
    }
    expect(existsSync(join(target, "etc/.wh.passwd"))).toBe(false);
    expect(dec.decode(lgetxattr(join(target, "opq"), "trusted.overlay.opaque"))).toBe("y");
    expect(readFileSync(join(target, "opq/keep"), "utf8")).toBe("kept");
    expect(dec.decode(lgetxattr(join(target, "newdir"), "trusted.overlay.opaque"))).toBe("y");
    expect(lstatSync(join(target, "newdir")).isDirectory()).toBe(true);
    expect(readdirSync(join(target, "newdir"))).toEqual([]);
    expect(existsSync(join(target, ".wh..wh.plnk"))).toBe(false);
    expect(existsSync(join(target, "x"))).toBe(false);
    expect(readFileSync(join(target, "same"), "utf8")).toBe("same layer wins");
  });

  test("a later entry replaces an earlier whiteout", async () => {
    const { target } = bed();
    await apply(target, [
      { type: "file", path: ".wh.back" },
      { type: "file", path: "back", data: "restored" },
    ]);
    expect(readFileSync(join(target, "back"), "utf8")).toBe("restored");
  });
});

describe.skipIf(!isRoot)("applyLayer: breakouts are refused or contained", () => {
  test("../x", () => expectRefused([{ type: "file", path: "../x", data: "pwn" }], "../x"));
  test("a/../../x", () => expectRefused([{ type: "file", path: "a/../../outside", data: "pwn" }], "a/../../outside"));
  test("../sentinel/victim", () => expectRefused([{ type: "file", path: "../sentinel/victim", data: "pwn" }], "../sentinel/victim"));
  test("dir ../", () => expectRefused([{ type: "dir", path: "../", mode: 0o777 }], "../"));
  test("a long PAX name that climbs out", () => {
    const name = `${"a/".repeat(60)}${"../".repeat(61)}outside`;
    return expectRefused([{ type: "file", path: name, data: "pwn" }], name);
  });

  test("absolute /etc/x lands inside the layer", async () => {
    const name = `/etc/crib-layer-test-${randomBytes(4).toString("hex")}`;
    const b = await expectContained([{ type: "file", path: name, data: "inside" }]);
    expect(readFileSync(join(b.target, name), "utf8")).toBe("inside");
    expect(existsSync(name)).toBe(false);
  });

  test("/../x and /a/../../x stay at the root", async () => {
    const b = await expectContained([
      { type: "file", path: "/../outside", data: "in1" },
      { type: "file", path: "/a/../../victim", data: "in2" },
    ]);
    expect(readFileSync(join(b.target, "outside"), "utf8")).toBe("in1");
    expect(readFileSync(join(b.target, "victim"), "utf8")).toBe("in2");
  });

  test("symlink a -> / then a/<sentinel>/victim", () => {
    const b = bed();
    const through = `a${b.sentinel}/victim`;
    return expectRefused([{ type: "symlink", path: "a", target: "/" }, { type: "file", path: through, data: "pwn" }], through, b);
  });

  test("symlink a -> / then a/etc/x", async () => {
    const name = `a/etc/crib-layer-test-${randomBytes(4).toString("hex")}`;
    await expectRefused([{ type: "symlink", path: "a", target: "/" }, { type: "file", path: name, data: "pwn" }], name);
    expect(existsSync(name.slice(1))).toBe(false);
  });

  test("symlink a -> .. then a/outside", () =>
    expectRefused([{ type: "symlink", path: "a", target: ".." }, { type: "file", path: "a/outside", data: "pwn" }], "a/outside"));

  test("a relative symlink chain climbing out", () =>
    expectRefused(
      [
        { type: "dir", path: "b/" },
        { type: "symlink", path: "b/up", target: ".." },
        { type: "symlink", path: "c", target: "b/up/.." },
        { type: "file", path: "c/sentinel/victim", data: "pwn" },
      ],
      "c/sentinel/victim",
    ));

  test("a symlink inside the layer is not a parent either", () =>
    expectRefused([{ type: "dir", path: "real/" }, { type: "symlink", path: "alias", target: "real" }, { type: "file", path: "alias/f" }], "alias/f"));

  test("a directory replaced by a symlink, then written through", () => {
    const b = bed();
    return expectRefused(
      [
        { type: "dir", path: "d/", mode: 0o700 },
        { type: "file", path: "d/f", data: "ok" },
        { type: "symlink", path: "d", target: b.sentinel },
        { type: "file", path: "d/victim", data: "pwn" },
      ],
      "d/victim",
      b,
    );
  });

  test("a file as a parent", () => expectRefused([{ type: "file", path: "f" }, { type: "file", path: "f/x" }], "f/x"));

  test("hardlink to ../outside", () =>
    expectRefused([{ type: "hardlink", path: "l", target: "../outside" }], "l"));

  test("hardlink to /etc/passwd (not in this layer)", async () => {
    const err = await expectRefused([{ type: "hardlink", path: "l", target: "/etc/passwd" }], "l");
    expect(err.message).toContain("does not exist");
  });

  test("hardlink to /etc/passwd of this layer links the layer's file", async () => {
    const b = await expectContained([
      { type: "file", path: "etc/passwd", data: "layer's own" },
      { type: "hardlink", path: "l", target: "/etc/passwd" },
    ]);
    expect(lstatSync(join(b.target, "l")).ino).toBe(lstatSync(join(b.target, "etc/passwd")).ino);
    expect(lstatSync(join(b.target, "l")).ino).not.toBe(lstatSync("/etc/passwd").ino);
  });

  test("hardlink through a symlinked directory", () => {
    const b = bed();
    return expectRefused([{ type: "symlink", path: "s", target: b.sentinel }, { type: "hardlink", path: "h", target: "s/victim" }], "h", b);
  });

  test("hardlink through a relative symlink climbing out", () =>
    expectRefused([{ type: "dir", path: "x/" }, { type: "symlink", path: "x/up", target: "../.." }, { type: "hardlink", path: "h", target: "x/up/outside" }], "h"));

  test("hardlink to a symlink pointing out links the symlink itself; nothing is changed through it (containerd HardlinkSymlinkChmod)", async () => {
    const b = bed();
    const shadow = join(b.sentinel, "shadow");
    await expectContained(
      [
        { type: "symlink", path: "ep", target: shadow },
        { type: "hardlink", path: "sketchy", target: "ep" },
        // Entries that would write or chmod through the link if it were followed:
        { type: "hardlink", path: "again", target: "sketchy" },
        { type: "file", path: "ep", data: "mine", mode: 0o777 },
      ],
      b,
    );
    const link = lstatSync(join(b.target, "sketchy"));
    expect(link.isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(b.target, "sketchy"))).toBe(shadow);
    expect(lstatSync(join(b.target, "again")).ino).toBe(link.ino);
    expect(lstatSync(join(b.target, "ep")).isFile()).toBe(true);
    expect(lstatSync(shadow).mode & 0o777).toBe(0o600);
  });

  test("hardlinks to a fifo and a device node are applied; to a whiteout refused", async () => {
    const b = await expectContained([
      { type: "fifo", path: "p" },
      { type: "hardlink", path: "p2", target: "p" },
      { type: "char", path: "null", major: 1, minor: 3 },
      { type: "hardlink", path: "null2", target: "null" },
    ]);
    expect(lstatSync(join(b.target, "p2")).ino).toBe(lstatSync(join(b.target, "p")).ino);
    expect(lstatSync(join(b.target, "null2")).isCharacterDevice()).toBe(true);
    await expectRefused([{ type: "file", path: ".wh.gone" }, { type: "hardlink", path: "h", target: "gone" }], "h");
  });

  test("hardlink to a directory, and to nothing", async () => {
    await expectRefused([{ type: "dir", path: "d/" }, { type: "hardlink", path: "h", target: "d" }], "h");
    await expectRefused([{ type: "hardlink", path: "h", target: "missing" }], "h");
    await expectRefused([{ type: "hardlink", path: "h", target: "/" }], "h");
  });

  test("CVE-2021-32760: symlink x -> shadow, then x as a file with mode and owner", async () => {
    const b = bed();
    const shadow = join(b.sentinel, "shadow");
    await expectContained(
      [
        { type: "symlink", path: "x", target: shadow },
        { type: "file", path: "x", data: "mine", mode: 0o777, uid: 4242, gid: 4242, mtime: 1000 },
      ],
      b,
    );
    const st = lstatSync(join(b.target, "x"));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o777);
    expect(statSync(shadow).mode & 0o7777).toBe(0o600);
  });

  test("CVE-2021-32760: symlink x -> shadow, then x as a directory with mode and owner", async () => {
    const b = bed();
    await expectContained(
      [
        { type: "symlink", path: "x", target: join(b.sentinel, "shadow") },
        { type: "dir", path: "x/", mode: 0o777, uid: 4242, gid: 4242 },
        { type: "file", path: "x/child", data: "c" },
      ],
      b,
    );
    expect(lstatSync(join(b.target, "x")).isDirectory()).toBe(true);
  });

  test("a directory's deferred mode is not applied through the symlink that replaced it", async () => {
    const b = bed();
    await expectContained(
      [
        { type: "dir", path: "d/", mode: 0o777, mtime: 1000 },
        { type: "symlink", path: "d", target: join(b.sentinel, "sub") },
      ],
      b,
    );
    expect(lstatSync(join(b.target, "d")).isSymbolicLink()).toBe(true);
  });

  test("symlink x -> sentinel, then x as a device or fifo", async () => {
    const b = bed();
    await expectContained(
      [
        { type: "symlink", path: "x", target: join(b.sentinel, "victim") },
        { type: "fifo", path: "x", mode: 0o777 },
        { type: "symlink", path: "y", target: join(b.sentinel, "shadow") },
        { type: "char", path: "y", major: 1, minor: 3, mode: 0o777 },
      ],
      b,
    );
    expect(lstatSync(join(b.target, "x")).isFIFO()).toBe(true);
    expect(lstatSync(join(b.target, "y")).isCharacterDevice()).toBe(true);
  });

  test("whiteouts that escape or are malformed", async () => {
    await expectRefused([{ type: "file", path: "../.wh.outside" }], "../.wh.outside");
    await expectRefused([{ type: "file", path: "a/../../.wh.outside" }], "a/../../.wh.outside");
    await expectRefused([{ type: "file", path: ".wh.." }], ".wh..");
    await expectRefused([{ type: "file", path: ".wh..." }], ".wh...");
    await expectRefused([{ type: "dir", path: "etc/" }, { type: "file", path: "etc/.wh.." }], "etc/.wh..");
  });

  test("a whiteout or opaque marker under a symlink", async () => {
    const b1 = bed();
    await expectRefused([{ type: "symlink", path: "l", target: b1.sentinel }, { type: "file", path: "l/.wh.victim" }], "l/.wh.victim", b1);
    const b2 = bed();
    await expectRefused([{ type: "symlink", path: "l", target: b2.sentinel }, { type: "file", path: "l/.wh..wh..opq" }], "l/.wh..wh..opq", b2);
  });

  test(".wh..wh..opq in an escaping directory", async () => {
    await expectRefused([{ type: "file", path: "../.wh..wh..opq" }], "../.wh..wh..opq");
    await expectRefused([{ type: "file", path: "../sentinel/.wh..wh..opq" }], "../sentinel/.wh..wh..opq");
  });

  test("a device or fifo named through ..", async () => {
    await expectRefused([{ type: "char", path: "../null", major: 1, minor: 3 }], "../null");
    await expectRefused([{ type: "block", path: "a/../../sentinel/sda", major: 8, minor: 0 }], "a/../../sentinel/sda");
    await expectRefused([{ type: "fifo", path: "../fifo" }], "../fifo");
  });

  test("a symlink named through .. (its target is stored, never followed)", async () => {
    await expectRefused([{ type: "symlink", path: "../evil", target: "/" }], "../evil");
    const b = await expectContained([{ type: "symlink", path: "ok", target: "../../../../etc/shadow" }]);
    expect(readlinkSync(join(b.target, "ok"))).toBe("../../../../etc/shadow");
  });
});

describe.skipIf(!isRoot)("applyLayer: limits and bad input", () => {
  test("a decompression bomb trips maxBytes", async () => {
    const { target } = bed();
    const tar = tarBytes([{ type: "file", path: "zeros", data: new Uint8Array(256 * 1024 * 1024) }]);
    const gz = zlib.gzipSync(tar, { level: 9 });
    expect(gz.length).toBeLessThan(1024 * 1024);
    const err = await failure(applyLayer([gz], "gzip", target, { maxBytes: 8 * 1024 * 1024 }));
    expect(err.kind).toBe("resource_exhausted");
    expect(err.message).toContain("maxBytes");
    expect(err.message).toContain(String(8 * 1024 * 1024));
    // The partial file never got near the bomb's size.
    expect(lstatSync(join(target, "zeros")).size).toBeLessThanOrEqual(8 * 1024 * 1024);
  });

  test("maxEntries", async () => {
    const { target } = bed();
    const entries: TarEntry[] = Array.from({ length: 10 }, (_, i) => ({ type: "file", path: `f${i}`, data: "x" }));
    const err = await failure(apply(target, entries, "zstd", { maxEntries: 5 }));
    expect(err.kind).toBe("resource_exhausted");
    expect(err.message).toContain("maxEntries");
    expect(err.message).toContain('"f5"');
  });

  test("a truncated tar", async () => {
    const tar = tarBytes([{ type: "file", path: "big", data: new Uint8Array(10000).fill(1) }]);
    const cut = tar.subarray(0, 512 + 4000);
    const err = await failure(applyLayer([cut], "none", bed().target));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("truncated");
    expect(err.message).toContain('"big"');
    const inHeader = await failure(applyLayer([tar.subarray(0, 100)], "none", bed().target));
    expect(inHeader.message).toContain("truncated");
  });

  test("a truncated gzip and a truncated zstd stream", async () => {
    const tar = tarBytes([{ type: "file", path: "f", data: randomBytes(200000) }]);
    const gz = zlib.gzipSync(tar);
    const zs = zlib.zstdCompressSync(tar);
    const e1 = await failure(applyLayer([gz.subarray(0, gz.length - 10)], "gzip", bed().target));
    expect(e1.kind).toBe("invalid_argument");
    expect(e1.message).toContain("gzip");
    const e2 = await failure(applyLayer([zs.subarray(0, zs.length - 10)], "zstd", bed().target));
    expect(e2.kind).toBe("invalid_argument");
    expect(e2.message).toContain("zstd");
  });

  test("garbage", async () => {
    const junk = randomBytes(4096);
    const e1 = await failure(applyLayer([junk], "none", bed().target));
    expect(e1.kind).toBe("invalid_argument");
    expect(e1.message).toContain("not a tar archive");
    const e2 = await failure(applyLayer([junk], "gzip", bed().target));
    expect(e2.kind).toBe("invalid_argument");
    expect(e2.message).toContain("not valid gzip");
    const e3 = await failure(applyLayer([junk], "zstd", bed().target));
    expect(e3.kind).toBe("invalid_argument");
    expect(e3.message).toContain("not valid zstd");
  });

  test("the diffID covers bytes after the end-of-archive marker", async () => {
    const tar = tarBytes([{ type: "file", path: "f", data: "x" }]);
    const padded = new Uint8Array(tar.length + 10240);
    padded.set(tar);
    const r = await applyLayer([padded], "none", bed().target);
    expect(r.diffID).toBe(sha256(padded));
    expect(r.bytes).toBe(padded.length);
  });

  test("an empty stream is an empty layer", async () => {
    const r = await applyLayer([], "none", bed().target);
    expect(r).toEqual({ diffID: sha256(new Uint8Array(0)), bytes: 0, entries: 0 });
  });

  test("an aborted signal stops the apply with its reason", async () => {
    const ac = new AbortController();
    ac.abort(new Error("pull cancelled"));
    const p = applyLayer([tarBytes([{ type: "file", path: "f" }])], "none", bed().target, { signal: ac.signal });
    expect(p).rejects.toThrow("pull cancelled");
  });

  test("an error of the source is passed on unchanged", async () => {
    const boom = new Error("connection reset");
    async function* src(): AsyncGenerator<Uint8Array> {
      yield tarBytes([{ type: "file", path: "f", data: "x".repeat(2000) }]).subarray(0, 1000);
      throw boom;
    }
    for (const c of ["none", "gzip"] as const) {
      const input = c === "none" ? src() : (async function* () {
        const gz = zlib.gzipSync(tarBytes([{ type: "file", path: "f", data: randomBytes(300000) }]));
        yield gz.subarray(0, 1000);
        throw boom;
      })();
      let caught: unknown;
      try {
        await applyLayer(input, c, bed().target);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBe(boom);
    }
  });
});

// Framing details of the reader that the helper's writer cannot produce directly:
// headers are patched in place and their checksum recomputed.
describe("tar reader", () => {
  function patch(tar: Uint8Array, header: number, field: number, bytes: Uint8Array | string): void {
    tar.set(typeof bytes === "string" ? enc.encode(bytes) : bytes, header + field);
    tar.fill(0x20, header + 148, header + 156);
    let sum = 0;
    for (let i = header; i < header + 512; i++) sum += tar[i]!;
    tar.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), header + 148);
  }

  async function headers(tar: Uint8Array): Promise<TarHeader[]> {
    const r = new TarReader((async function* () {
      yield tar;
    })());
    const out: TarHeader[] = [];
    for (let h = await r.next(); h !== null; h = await r.next()) out.push(h);
    return out;
  }

  test("GNU base-256 numbers", async () => {
    const tar = tarBytes([{ type: "file", path: "f", data: "x" }]);
    patch(tar, 0, 108, new Uint8Array([0x80, 0, 0, 0, 0xb2, 0xd0, 0x5e, 0x00])); // uid 3000000000
    const [h] = await headers(tar);
    expect(h?.uid).toBe(3000000000);
  });

  test("PAX times: fractions and negative values", async () => {
    const hs = await headers(tarBytes([
      { type: "file", path: "a", mtime: -1.5 },
      { type: "file", path: "b", mtime: 1577836800.25 },
    ]));
    expect(hs.map((h) => h.mtime)).toEqual([{ sec: -2, nsec: 500000000 }, { sec: 1577836800, nsec: 250000000 }]);
  });

  test("header-only types carry no data whatever their size field says (as Go reads them)", async () => {
    const tar = tarBytes([{ type: "symlink", path: "a", target: "b" }, { type: "file", path: "next", data: "x" }]);
    patch(tar, 0, 124, "00000001000\0"); // size 512 on a symlink
    const hs = await headers(tar);
    expect(hs.map((h) => [h.path, h.kind, h.size])).toEqual([["a", "symlink", 0], ["next", "file", 1]]);
  });

  test("a global PAX header is ignored", async () => {
    const body = "20 path=/etc/shadow\n";
    const tar = tarBytes([{ type: "file", path: "pax_global_header", data: body }, { type: "file", path: "real", data: "x" }]);
    patch(tar, 0, 156, "g");
    const hs = await headers(tar);
    expect(hs.map((h) => h.path)).toEqual(["real"]);
  });

  test("a bad checksum after the first header names its offset", async () => {
    const tar = tarBytes([{ type: "file", path: "a", data: "x" }, { type: "file", path: "b", data: "y" }]);
    tar[1024 + 10] = 0x41; // corrupt the second header's name, keep its checksum
    const err = await failure(headers(tar));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("checksum");
    expect(err.message).toContain("byte 1024");
  });

  test("GNU sparse entries are refused by name", async () => {
    const tar = tarBytes([{ type: "file", path: "sparse", data: "x" }]);
    patch(tar, 0, 156, "S");
    const err = await failure(headers(tar));
    expect(err.message).toContain("sparse");
    expect(err.message).toContain('"sparse"');
  });
});
