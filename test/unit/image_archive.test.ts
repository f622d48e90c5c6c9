// The pure parts of image archives and config reload: entry names, compression
// sniffing, the tar writer (read back by the layer tar reader), reload key diffs.
import { describe, expect, test } from "bun:test";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { changedKeys, isReloadable } from "../../src/daemon/reload.ts";
import { defaultConfig } from "../../src/config/config.ts";
import { cleanArchivePath, sniffCompression } from "../../src/image/archive/stage.ts";
import { TarWriter } from "../../src/image/archive/tar_write.ts";
import { TarReader } from "../../src/image/layer/tar_reader.ts";
import { unixAddress } from "../../src/sys/notify.ts";
import { tempDir } from "../helpers/tmp.ts";

describe("cleanArchivePath", () => {
  test("relative names are cleaned", () => {
    expect(cleanArchivePath("./index.json", "a")).toBe("index.json");
    expect(cleanArchivePath("blobs//sha256/./x", "a")).toBe("blobs/sha256/x");
    expect(cleanArchivePath("a/b/../c", "a")).toBe("a/c");
  });
  test("absolute names and names climbing out are refused, naming the entry", () => {
    expect(() => cleanArchivePath("/etc/passwd", "archive x")).toThrow('archive x: entry "/etc/passwd" has an absolute path');
    expect(() => cleanArchivePath("../x", "archive x")).toThrow('"../x" climbs out of the archive');
    expect(() => cleanArchivePath("a/../../x", "archive x")).toThrow("climbs out");
  });
});

test("sniffCompression", () => {
  expect(sniffCompression(Bun.gzipSync(new Uint8Array([1, 2, 3])))).toBe("gzip");
  expect(sniffCompression(Bun.zstdCompressSync(new Uint8Array([1, 2, 3])))).toBe("zstd");
  expect(sniffCompression(new TextEncoder().encode("index.json\0\0\0"))).toBe("none");
  expect(sniffCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58]))).toBe("xz");
});

test("TarWriter output reads back, with a PAX header for a long name", async () => {
  const path = join(tempDir("crib-tarw-"), "t.tar");
  const fh = await open(path, "w");
  const long = `blobs/sha512/${"a".repeat(128)}`;
  const w = new TarWriter(fh);
  await w.dir("blobs");
  await w.file("oci-layout", 3, new TextEncoder().encode("abc"));
  await w.file(long, 700, (async function* () {
    yield new Uint8Array(500).fill(1);
    yield new Uint8Array(200).fill(2);
  })());
  await w.end();
  await fh.close();
  const bytes = new Uint8Array(await readFile(path));
  expect(bytes.length).toBe(w.bytes);
  expect(bytes.length % 512).toBe(0);
  const r = new TarReader((async function* () {
    yield bytes;
  })());
  const seen: [string, string, number][] = [];
  for (let h = await r.next(); h !== null; h = await r.next()) {
    let n = 0;
    for await (const c of r.body()) n += c.length;
    seen.push([h.path, h.kind, n]);
  }
  expect(seen).toEqual([["blobs/", "dir", 0], ["oci-layout", "file", 3], [long, "file", 700]]);
  // GNU tar agrees.
  const listed = Bun.spawnSync(["tar", "-tf", path]).stdout.toString().trim().split("\n");
  expect(listed).toEqual(["blobs/", "oci-layout", long]);
});

test("TarWriter refuses a body that is not the announced size", async () => {
  const fh = await open(join(tempDir("crib-tarw-"), "t.tar"), "w");
  try {
    await expect(new TarWriter(fh).file("x", 5, new Uint8Array(3))).rejects.toThrow("3 bytes instead of the 5 announced");
  } finally {
    await fh.close();
  }
});

describe("reload", () => {
  test("changedKeys names leaves; isReloadable sorts them", () => {
    const a = defaultConfig();
    const b = defaultConfig();
    b.log.level = "debug";
    b.socket = "/run/other.sock";
    b.registries.mirrors["docker.io"] = { endpoint: ["http://127.0.0.1:5000"] };
    b.runtime.handlers.runc = { path: "/usr/bin/runc" };
    const keys = changedKeys(a, b).sort();
    expect(keys).toEqual(["log.level", "registries.mirrors.docker.io", "runtime.handlers.runc.path", "socket"]);
    expect(keys.filter(isReloadable)).toEqual(["log.level", "registries.mirrors.docker.io"]);
    expect(changedKeys(a, defaultConfig())).toEqual([]);
  });
});

test("unixAddress: a path keeps its NUL, an @abstract name starts with one", () => {
  const p = unixAddress("/run/systemd/notify");
  expect(p.len).toBe(2 + "/run/systemd/notify".length + 1);
  const a = unixAddress("@crib");
  expect(a.len).toBe(2 + 1 + 4);
  expect(a.addr[2]).toBe(0);
  expect(a.addr.subarray(3, 7).toString()).toBe("crib");
  expect(() => unixAddress("relative")).toThrow();
});
