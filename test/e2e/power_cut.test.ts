// A power cut right after a pull: the layers the store recorded must hold their data.
//
// crib's root is an ext4 filesystem on a loop device. The moment after PullImage
// returns, the loop device's backing file is copied: the copy is exactly what the
// "disk" had then, without the page cache, as after a power cut. The copy is mounted
// (ext4 replays its journal) and every file of the layer is compared with the image.
// A control file written without fsync just before the copy must be missing or empty
// in it, which shows the copy really leaves out what was only in the page cache.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startCrib, shutdownCrib, tempConfig, type CribInstance } from "../helpers/daemon.ts";
import { pushImage, randomLayer, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";
import type { TarEntry } from "../helpers/tar.ts";

const FS_BYTES = 256 * 1024 * 1024;
const LAYER_BYTES = 24 * 1024 * 1024;

let reg: StartedRegistry;
let image: PushedImage;
let entries: TarEntry[];
const loops: string[] = [];
const mounts: string[] = [];

function run(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString().trim();
}

/** A fresh ext4 filesystem in `file`, mounted at `dir` through a loop device. */
function mountImage(file: string, dir: string): void {
  const loop = run(["losetup", "--find", "--show", file]);
  loops.push(loop);
  mkdirSync(dir, { recursive: true });
  run(["mount", "-t", "ext4", loop, dir]);
  mounts.push(dir);
}

function unmountAll(): void {
  for (const m of mounts.splice(0).reverse()) Bun.spawnSync(["umount", m]);
  for (const l of loops.splice(0)) Bun.spawnSync(["losetup", "-d", l]);
}

beforeAll(async () => {
  reg = await startRegistry();
  entries = randomLayer(LAYER_BYTES, 4242);
  image = await pushImage(reg, "powercut/data:1", { layers: [entries], compression: "gzip" });
});

afterAll(async () => {
  unmountAll();
  await reg?.stop();
});

describe("a power cut right after PullImage returns", () => {
  let crib: CribInstance | undefined;

  afterAll(async () => {
    await shutdownCrib(crib);
    crib?.cleanup();
  });

  test("every file of the recorded layer holds its data (pull.syncFs, the default)", async () => {
    const work = tempDir("crib-powercut-");
    const disk = join(work, "disk.img");
    writeFileSync(disk, "");
    run(["truncate", "-s", String(FS_BYTES), disk]);
    run(["mkfs.ext4", "-q", "-F", disk]);
    const root = join(work, "root");
    mountImage(disk, root);

    const t = tempConfig();
    writeFileSync(
      t.configPath,
      JSON.stringify({ socket: t.socket, root: join(root, "crib"), state: t.state, log: { level: "debug" }, registries: { mirrors: { [reg.host]: { endpoint: [`http://${reg.host}`] } } } }),
    );
    crib = await startCrib({}, t);
    await crib.client.call("ImageService", "PullImage", { image: { image: image.ref } });

    // The control: written, never flushed. Then the cut.
    writeFileSync(join(root, "control.bin"), new Uint8Array(1024 * 1024).fill(7));
    const cut = join(work, "after-cut.img");
    run(["cp", "--sparse=always", disk, cut]);

    const seen = join(work, "seen");
    mountImage(cut, seen);
    const control = join(seen, "control.bin");
    expect(!existsSync(control) || statSync(control).size === 0).toBe(true);

    // The image is recorded in the copy's database...
    const db = new Database(join(seen, "crib", "crib.db"));
    try {
      const row = db.query("SELECT id FROM images").get() as { id: string } | null;
      expect(row?.id).toBe(image.configDigest);
    } finally {
      db.close();
    }
    // ...and its layer has every byte (one layer: its chain ID is its diff ID).
    const layerDir = join(seen, "crib", "layers", image.layers[0]!.diffID.slice("sha256:".length));
    let files = 0;
    for (const e of entries) {
      if (e.type !== "file" || !(e.data instanceof Uint8Array)) continue;
      const got = readFileSync(join(layerDir, e.path));
      expect(got.length).toBe(e.data.length);
      expect(Buffer.compare(got, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength))).toBe(0);
      files++;
    }
    expect(files).toBeGreaterThan(1);
  });
});
