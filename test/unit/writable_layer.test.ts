// du-like walks of a writable layer, bounded and cached, on real files.
import { describe, expect, test } from "bun:test";
import { linkSync, mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DiskUsageCache, diskUsage } from "../../src/stats/writable_layer.ts";
import { tempDir } from "../helpers/tmp.ts";

const blocks = (p: string) => BigInt(statSync(p).blocks) * 512n;

describe("writable layer usage", () => {
  test("allocated bytes and inodes, hardlinks once, symlinks not followed", async () => {
    const dir = tempDir("crib-du-");
    mkdirSync(join(dir, "a/b"), { recursive: true });
    writeFileSync(join(dir, "a/b/big"), Buffer.alloc(256 * 1024, 1));
    linkSync(join(dir, "a/b/big"), join(dir, "a/hard"));
    symlinkSync("/usr", join(dir, "usr-link"));
    const u = await diskUsage(dir);
    expect(u.inodes).toBe(5n); // dir, a, a/b, big (= hard), usr-link
    const expected = [dir, join(dir, "a"), join(dir, "a/b"), join(dir, "a/b/big")].reduce((n, p) => n + blocks(p), 0n);
    expect(u.bytes).toBeGreaterThanOrEqual(expected);
    expect(u.bytes).toBeGreaterThanOrEqual(256n * 1024n);
    expect(u.truncated).toBe(false);
  });

  test("a missing dir is empty; the entry bound stops the walk", async () => {
    expect((await diskUsage("/nonexistent/crib-du")).inodes).toBe(0n);
    const dir = tempDir("crib-du-");
    for (let i = 0; i < 20; i++) writeFileSync(join(dir, `f${i}`), "x");
    const u = await diskUsage(dir, 10);
    expect(u.truncated).toBe(true);
  });

  test("cached while fresh; forgetting a key walks again", async () => {
    const dir = tempDir("crib-du-");
    const cache = new DiskUsageCache(60_000);
    const first = await cache.get("c", dir);
    writeFileSync(join(dir, "new"), Buffer.alloc(8192, 1));
    expect((await cache.get("c", dir)).inodes).toBe(first.inodes);
    cache.retain(new Set(["other"]));
    expect((await cache.get("c", dir)).inodes).toBe(first.inodes + 1n);
  });
});
