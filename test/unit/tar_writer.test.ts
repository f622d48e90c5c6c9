import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { DEFAULT_MTIME, tarBytes, type TarEntry } from "../helpers/tar.ts";

interface ReadBack {
  path: string;
  type: string;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  size: number;
  mtime: Date | undefined;
  linkpath: string | undefined;
  devmaj: number | undefined;
  devmin: number | undefined;
  data: Buffer;
}

/** Reads an archive back with node-tar's strict parser; any warning fails the test. */
async function readBack(bytes: Uint8Array): Promise<ReadBack[]> {
  const out: ReadBack[] = [];
  const warnings: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      strict: true,
      onwarn: (code: string, message: string | Error) => warnings.push(`${code}: ${String(message)}`),
      onReadEntry: (e: ReadEntry) => {
        const chunks: Buffer[] = [];
        e.on("data", (c: Buffer) => chunks.push(c));
        e.on("end", () =>
          out.push({
            path: e.path,
            type: e.type,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            mtime: e.mtime,
            linkpath: e.linkpath,
            devmaj: e.header.devmaj,
            devmin: e.header.devmin,
            data: Buffer.concat(chunks),
          }),
        );
      },
    });
    parser.on("end", () => resolve());
    parser.on("error", reject);
    parser.end(Buffer.from(bytes));
  });
  expect(warnings).toEqual([]);
  return out;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Lists the archive with GNU tar, xattrs included (`-tvv --xattrs` prints "x: <len> <name>"). */
function gnuList(bytes: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), "crib-tar-writer-"));
  dirs.push(dir);
  const file = join(dir, "a.tar");
  writeFileSync(file, bytes);
  const r = Bun.spawnSync(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-tvvf", file], {
    env: { ...process.env, TZ: "UTC", LC_ALL: "C" },
  });
  expect(r.exitCode).toBe(0);
  return r.stdout.toString();
}

describe("tarBytes", () => {
  test("empty archive is two zero blocks", () => {
    const b = tarBytes([]);
    expect(b.length).toBe(1024);
    expect(b.every((x) => x === 0)).toBe(true);
  });

  test("every entry type reads back with its fields and defaults", async () => {
    const entries: TarEntry[] = [
      { type: "dir", path: "etc/" },
      { type: "dir", path: "tmp/", mode: 0o1777, uid: 5, gid: 6, mtime: 1_000_000 },
      { type: "file", path: "etc/passwd", data: "root:x:0:0::/root:/bin/sh\n" },
      { type: "file", path: "bin/tool", data: new Uint8Array([0, 1, 2, 255]), mode: 0o4755, uid: 1000, gid: 2000 },
      { type: "file", path: "empty" },
      { type: "symlink", path: "bin/sh", target: "busybox" },
      { type: "hardlink", path: "bin/ls", target: "bin/tool" },
      { type: "char", path: "dev/null", major: 1, minor: 3 },
      { type: "block", path: "dev/sda", major: 8, minor: 0, mode: 0o600 },
      { type: "fifo", path: "run/pipe" },
    ];
    const got = await readBack(tarBytes(entries));
    expect(got.map((e) => [e.path, e.type])).toEqual([
      ["etc/", "Directory"],
      ["tmp/", "Directory"],
      ["etc/passwd", "File"],
      ["bin/tool", "File"],
      ["empty", "File"],
      ["bin/sh", "SymbolicLink"],
      ["bin/ls", "Link"],
      ["dev/null", "CharacterDevice"],
      ["dev/sda", "BlockDevice"],
      ["run/pipe", "FIFO"],
    ]);
    const [etc, tmp, passwd, tool, empty, sh, ls, devnull, sda, fifo] = got;
    expect(etc?.mode).toBe(0o755);
    expect(etc?.mtime?.getTime()).toBe(DEFAULT_MTIME * 1000);
    expect(DEFAULT_MTIME).toBe(Date.parse("2020-01-01T00:00:00Z") / 1000);
    expect([tmp?.mode, tmp?.uid, tmp?.gid, tmp?.mtime?.getTime()]).toEqual([0o1777, 5, 6, 1_000_000_000]);
    expect([passwd?.mode, passwd?.uid, passwd?.gid]).toEqual([0o644, 0, 0]);
    expect(passwd?.data.toString()).toBe("root:x:0:0::/root:/bin/sh\n");
    expect([tool?.mode, tool?.uid, tool?.gid]).toEqual([0o4755, 1000, 2000]);
    expect([...(tool?.data ?? [])]).toEqual([0, 1, 2, 255]);
    expect(empty?.size).toBe(0);
    expect(sh?.linkpath).toBe("busybox");
    expect(ls?.linkpath).toBe("bin/tool");
    expect([devnull?.devmaj, devnull?.devmin, devnull?.mode]).toEqual([1, 3, 0o666]);
    expect([sda?.devmaj, sda?.devmin, sda?.mode]).toEqual([8, 0, 0o600]);
    expect(fifo?.mode).toBe(0o644);
  });

  test("hostile paths are written verbatim", async () => {
    const hostile = ["../x", "/etc/x", "a/../../b", "./.", "a//b"];
    const bytes = tarBytes([
      ...hostile.map((p): TarEntry => ({ type: "file", path: p, data: p })),
      { type: "symlink", path: "out", target: "../../../../etc/shadow" },
      { type: "hardlink", path: "hl", target: "/etc/passwd" },
    ]);
    // node-tar's parser keeps paths as stored (only its unpacker sanitises them).
    const got = await readBack(bytes);
    expect(got.map((e) => e.path)).toEqual([...hostile, "out", "hl"]);
    expect(got.slice(0, hostile.length).map((e) => e.data.toString())).toEqual(hostile);
    expect(got[hostile.length]?.linkpath).toBe("../../../../etc/shadow");
    expect(got[hostile.length + 1]?.linkpath).toBe("/etc/passwd");
    // And the raw name fields hold exactly those bytes.
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe("../x");
  });

  test("long names and link targets go through PAX records", async () => {
    const longDir = "d".repeat(120);
    const longPath = `${longDir}/${"f".repeat(150)}`;
    const longTarget = `/${"t".repeat(300)}`;
    const unicode = "données/ファイル";
    const got = await readBack(
      tarBytes([
        { type: "file", path: longPath, data: "long" },
        { type: "symlink", path: "s", target: longTarget },
        { type: "hardlink", path: `${longDir}/link`, target: longPath },
        { type: "file", path: unicode, data: "u" },
      ]),
    );
    expect(got.map((e) => e.path)).toEqual([longPath, "s", `${longDir}/link`, unicode]);
    expect(got[0]?.data.toString()).toBe("long");
    expect(got[1]?.linkpath).toBe(longTarget);
    expect(got[2]?.linkpath).toBe(longPath);
    expect(gnuList(tarBytes([{ type: "file", path: longPath }]))).toContain(longPath);
  });

  test("fractional and out-of-range mtimes and ids use PAX", async () => {
    const got = await readBack(
      tarBytes([
        { type: "file", path: "frac", mtime: 1_600_000_000.25 },
        { type: "file", path: "old", mtime: -10 },
        { type: "file", path: "bigid", uid: 4_000_000_000, gid: 3_000_000 },
      ]),
    );
    expect(got[0]?.mtime?.getTime()).toBe(1_600_000_000_250);
    expect(got[1]?.mtime?.getTime()).toBe(-10_000);
    expect([got[2]?.uid, got[2]?.gid]).toEqual([4_000_000_000, 3_000_000]);
  });

  test("xattrs are SCHILY.xattr PAX records that GNU tar reads", async () => {
    const bytes = tarBytes([
      { type: "file", path: "bin/ping", data: "x", xattrs: { "security.capability": "\u0001cap", "user.note": "hé" } },
      { type: "dir", path: "opaque/", xattrs: { "trusted.overlay.opaque": "y" } },
    ]);
    const got = await readBack(bytes);
    expect(got.map((e) => [e.path, e.data.toString()])).toEqual([
      ["bin/ping", "x"],
      ["opaque/", ""],
    ]);
    const text = Buffer.from(bytes).toString("latin1");
    // "<len> <key>=<value>\n" where len counts the whole record in bytes.
    for (const record of ["SCHILY.xattr.security.capability=\u0001cap\n", "SCHILY.xattr.user.note=hé\n", "SCHILY.xattr.trusted.overlay.opaque=y\n"]) {
      const body = Buffer.from(` ${record}`);
      const len = body.length + String(body.length + 2).length;
      expect(text).toContain(Buffer.concat([Buffer.from(String(len)), body]).toString("latin1"));
    }
    const listing = gnuList(bytes);
    expect(listing).toContain("x: 4 security.capability");
    expect(listing).toContain("x: 3 user.note");
    expect(listing).toContain("x: 1 trusted.overlay.opaque");
  });

  test("data larger than a block is padded and read back intact", async () => {
    const data = new Uint8Array(70_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    const bytes = tarBytes([
      { type: "file", path: "big", data },
      { type: "file", path: "after", data: "tail" },
    ]);
    expect(bytes.length % 512).toBe(0);
    const got = await readBack(bytes);
    expect(got[0]?.size).toBe(70_000);
    expect(Buffer.compare(got[0]?.data ?? Buffer.alloc(0), Buffer.from(data))).toBe(0);
    expect(got[1]?.data.toString()).toBe("tail");
  });

  test("output is reproducible and GNU tar accepts it", () => {
    const entries: TarEntry[] = [
      { type: "dir", path: "a/" },
      { type: "file", path: "a/b", data: "b" },
      { type: "symlink", path: "a/c", target: "b" },
    ];
    const one = tarBytes(entries);
    expect(Buffer.compare(Buffer.from(one), Buffer.from(tarBytes(entries)))).toBe(0);
    const listing = gnuList(one);
    expect(listing).toMatch(/^drwxr-xr-x +0\/0 .* a\/$/m);
    expect(listing).toContain("2020-01-01 00:00 a/b");
    expect(listing).toContain("a/c -> b");
  });
});
