import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chainIDs } from "../../src/image/chain_id.ts";
import { digestOf } from "../../src/image/digest.ts";
import { ImageStore } from "../../src/image/image_store.ts";
import { openDatabase } from "../../src/state/db.ts";
import { Limiter, SingleFlight } from "../../src/util/limiter.ts";

const d = (s: string) => digestOf(s);

describe("chain IDs", () => {
  test("first is the diff ID; then sha256 of 'parent diff'", () => {
    const [a, b] = [d("a"), d("b")];
    expect(chainIDs([a, b])).toEqual([a, digestOf(`${a} ${b}`)]);
    expect(chainIDs([])).toEqual([]);
  });
});

describe("ImageStore", () => {
  function store() {
    const dir = mkdtempSync(join(tmpdir(), "crib-db-"));
    return { s: new ImageStore(openDatabase(dir)), dir };
  }
  const layer = (x: string) => ({ digest: d(`blob${x}`), size: 10, mediaType: "m", diffID: d(`diff${x}`), chainID: d(`chain${x}`) });
  const rec = (id: string, layers: ReturnType<typeof layer>[]) => ({
    id, manifestDigest: d(`m${id}`), topDigest: d(`m${id}`), configMediaType: "c", size: 1, layers, blobs: [d(`m${id}`), id, ...layers.map((l) => l.digest)],
  });
  const layerRec = (l: ReturnType<typeof layer>) => ({ chainID: l.chainID, diffID: l.diffID, blobDigest: l.digest, parent: null, bytes: 5, inodes: 2 });

  test("a tag moves to the newer image; the old one stays untagged", () => {
    const { s, dir } = store();
    const l1 = layer("1");
    s.put(rec(d("img1"), [l1]), ["r/a:latest", "r/a@x"], false, [layerRec(l1)]);
    s.put(rec(d("img2"), [l1]), ["r/a:latest"], false, [layerRec(l1)]);
    expect(s.byName("r/a:latest")?.id).toBe(d("img2"));
    expect(s.get(d("img1"))?.names).toEqual(["r/a@x"]);
    expect(s.layers()).toHaveLength(1);
    rmSync(dir, { recursive: true });
  });

  test("referenced blobs and chains follow the images left", () => {
    const { s, dir } = store();
    const [l1, l2] = [layer("1"), layer("2")];
    s.put(rec(d("img1"), [l1]), ["a:1"], false, [layerRec(l1)]);
    s.put(rec(d("img2"), [l1, l2]), ["b:1"], false, [layerRec(l1), layerRec(l2)]);
    expect(s.remove(d("img2"))).toBe(true);
    expect(s.remove(d("img2"))).toBe(false);
    const r = s.referenced();
    expect(r.chainIDs).toEqual(new Set([l1.chainID]));
    expect(r.blobs.has(l2.digest)).toBe(false);
    expect(s.byName("b:1")).toBeUndefined();
    expect(s.usage()).toEqual({ layerBytes: 10, layerInodes: 4 });
    rmSync(dir, { recursive: true });
  });

  test("the database survives reopening", () => {
    const { s, dir } = store();
    s.put(rec(d("img1"), []), ["a:1"], true, []);
    const again = new ImageStore(openDatabase(dir));
    expect(again.byName("a:1")?.pinned).toBe(true);
    rmSync(dir, { recursive: true });
  });
});

describe("Limiter and SingleFlight", () => {
  test("at most n at once", async () => {
    const lim = new Limiter(2);
    let active = 0;
    let peak = 0;
    await Promise.all(Array.from({ length: 6 }, () => lim.run(async () => {
      peak = Math.max(peak, ++active);
      await Bun.sleep(5);
      active--;
    })));
    expect(peak).toBe(2);
  });

  test("same key shares one run; errors reach every caller and clear the key", async () => {
    const sf = new SingleFlight<number>();
    let runs = 0;
    const work = () => sf.run("k", async () => { runs++; await Bun.sleep(5); return 7; });
    expect(await Promise.all([work(), work(), work()])).toEqual([7, 7, 7]);
    expect(runs).toBe(1);
    const fail = () => sf.run("e", async () => { throw new Error("boom"); });
    await expect(Promise.all([fail(), fail()])).rejects.toThrow("boom");
    expect(sf.has("e")).toBe(false);
  });
});
