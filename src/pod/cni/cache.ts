// What a pod's CNI ADD ran with and returned, kept under <root>/cni/cache so
// DEL works after a daemon restart, a config change or a reboot (netns gone).
// Written before ADD (result null) and again after it, atomically.
import { open, mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode } from "../../errors.ts";
import type { CapabilityArgs } from "./args.ts";
import { isObject, type JsonObject } from "./config.ts";

export interface CacheEntry {
  kind: "crib-cni-cache";
  version: 1;
  podId: string;
  ifName: string;
  netns: string;
  /** The config file the list came from (for messages). */
  file: string;
  /** The network list ADD ran (networkToObject). */
  network: JsonObject;
  cniArgs: [string, string][];
  capabilityArgs: CapabilityArgs;
  /** The list's ADD result; null while ADD runs (or if it crashed). */
  result: JsonObject | null;
}

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export class CniCache {
  constructor(readonly dir: string) {}

  private path(podId: string): string {
    if (!SAFE_ID.test(podId)) throw new Error(`pod id ${JSON.stringify(podId)} cannot name a CNI cache file`);
    return join(this.dir, `${podId}.json`);
  }

  /** The entry, undefined if none; throws if it cannot be read or parsed. */
  async read(podId: string): Promise<CacheEntry | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(podId), "utf8");
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return undefined;
      throw e;
    }
    const data: unknown = JSON.parse(text);
    if (!isObject(data) || data.kind !== "crib-cni-cache" || data.version !== 1 || !isObject(data.network)) {
      throw new Error(`${this.path(podId)} is not a crib CNI cache entry`);
    }
    return data as unknown as CacheEntry;
  }

  async write(entry: CacheEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const final = this.path(entry.podId);
    const tmp = `${final}.tmp`;
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(entry));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
  }

  /** Remove the entry and a temp file a crash during write() left. */
  async remove(podId: string): Promise<void> {
    await rm(this.path(podId), { force: true });
    await rm(`${this.path(podId)}.tmp`, { force: true });
  }

  /** Pod ids with an entry, or only the temp file of a write a crash cut short. */
  async podIds(): Promise<string[]> {
    try {
      const ids = (await readdir(this.dir)).map((n) => /^(.+)\.json(\.tmp)?$/.exec(n)?.[1]).filter((id): id is string => id !== undefined);
      return [...new Set(ids)];
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return [];
      throw e;
    }
  }
}
