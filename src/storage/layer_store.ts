// Unpacked layers: /var/lib/crib/layers/<chainID hex>/, one per layer chain,
// shared by every image that holds it. A layer is unpacked into a temp dir and
// renamed into place, so a directory with the final name is always complete; with
// pull.syncFs (the default) its files are on the disk before the rename, and the
// rename before the caller records the layer (see durable.ts).
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode } from "../errors.ts";
import { log } from "../log/logger.ts";
import { fsyncDir, syncFileSystemOf } from "./durable.ts";

const logger = log.with({ component: "layer-store" });

const TMP_SUFFIX = ".unpacking";

function hexOf(digest: string): string {
  const i = digest.indexOf(":");
  const hex = digest.slice(i + 1);
  if (i < 0 || !/^[a-f0-9]{64,128}$/.test(hex)) throw new Error(`not a digest: ${digest}`);
  return hex;
}

export class LayerStore {
  readonly dir: string;

  /** `durable`: whether to flush each new layer to the disk before it is renamed in (read per layer: a reload may change it). */
  constructor(
    root: string,
    private readonly durable: () => boolean,
  ) {
    this.dir = join(root, "layers");
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  path(chainID: string): string {
    return join(this.dir, hexOf(chainID));
  }

  /**
   * Unpack a layer with `fill` into a fresh temp dir, then rename it into
   * place. A leftover temp dir of a killed unpack is removed first.
   */
  async create<T>(chainID: string, fill: (dir: string) => Promise<T>): Promise<T> {
    const final = this.path(chainID);
    const tmp = final + TMP_SUFFIX;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { mode: 0o755 });
    try {
      const started = performance.now();
      const result = await fill(tmp);
      const filled = performance.now();
      const durable = this.durable();
      if (durable) await syncFileSystemOf(tmp);
      await rm(final, { recursive: true, force: true }); // a dir without a DB row (crash after rename)
      await rename(tmp, final);
      if (durable) await fsyncDir(this.dir);
      logger.debug("layer in place", { chainID, fillMs: Math.round(filled - started), flushMs: Math.round(performance.now() - filled) });
      return result;
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  async remove(chainID: string): Promise<void> {
    await rm(this.path(chainID), { recursive: true, force: true });
  }

  /** Names (hex) of the layer dirs on disk, complete or not. */
  async listOnDisk(): Promise<{ complete: string[]; partial: string[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return { complete: [], partial: [] };
      throw e;
    }
    return {
      complete: names.filter((n) => !n.endsWith(TMP_SUFFIX)),
      partial: names.filter((n) => n.endsWith(TMP_SUFFIX)),
    };
  }
}
