// Bytes and inodes a container's writable layer (its overlay upper dir) holds,
// counted like du: allocated blocks, each hardlinked inode once, symlinks not
// followed. The walk is bounded (a layer with millions of files reports a lower
// bound) and cached: the kubelet asks every ~10 s, and several RPCs in a row
// (ListContainerStats, ListPodSandboxStats, metrics) share one walk.
import type { Dirent } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

export interface DiskUsage {
  bytes: bigint;
  inodes: bigint;
  /** The walk stopped at its entry limit: the figures are a lower bound. */
  truncated: boolean;
  /** Wall clock of the walk, ns. */
  timestampNs: bigint;
}

export const MAX_WALK_ENTRIES = 1_000_000;
const LSTAT_BATCH = 256;

/** Walk `dir` (a missing dir is empty). */
export async function diskUsage(dir: string, maxEntries = MAX_WALK_ENTRIES): Promise<DiskUsage> {
  const timestampNs = BigInt(Date.now()) * 1_000_000n;
  let bytes = 0n;
  let inodes = 0n;
  let seen = 0;
  const linked = new Set<bigint>();
  const count = async (path: string): Promise<boolean> => {
    try {
      const st = await lstat(path, { bigint: true });
      if (st.nlink > 1n && !st.isDirectory()) {
        if (linked.has(st.ino)) return false;
        linked.add(st.ino);
      }
      bytes += st.blocks * 512n;
      inodes++;
      return st.isDirectory();
    } catch {
      return false; // removed while we walk
    }
  };
  if (!(await count(dir))) return { bytes, inodes, truncated: false, timestampNs };
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    if (seen + entries.length > maxEntries) return { bytes, inodes, truncated: true, timestampNs };
    seen += entries.length;
    // lstat in slices: a directory of 100k files must not start 100k calls at once.
    for (let i = 0; i < entries.length; i += LSTAT_BATCH) {
      const slice = entries.slice(i, i + LSTAT_BATCH);
      const isDir = await Promise.all(slice.map((e) => count(join(d, e.name))));
      slice.forEach((e, j) => {
        if (isDir[j] && e.isDirectory()) stack.push(join(d, e.name));
      });
    }
  }
  return { bytes, inodes, truncated: false, timestampNs };
}

/**
 * Cached walks by key. An entry lives `ttlMs`, or ten times as long as its walk
 * took when that is longer, so a huge layer is not walked back to back. Callers
 * asking during a walk share it.
 */
export class DiskUsageCache {
  private readonly entries = new Map<string, { at: number; ttl: number; value: Promise<DiskUsage> }>();

  constructor(private readonly ttlMs = 3000, private readonly maxEntries = MAX_WALK_ENTRIES) {}

  get(key: string, dir: string): Promise<DiskUsage> {
    const now = performance.now();
    const hit = this.entries.get(key);
    if (hit && now - hit.at < hit.ttl) return hit.value;
    const entry = { at: now, ttl: Number.POSITIVE_INFINITY, value: diskUsage(dir, this.maxEntries) };
    this.entries.set(key, entry);
    entry.value.then(
      () => {
        entry.ttl = Math.max(this.ttlMs, 10 * (performance.now() - now));
      },
      () => this.entries.delete(key),
    );
    return entry.value;
  }

  /** Drop entries whose key is not in `live` (removed containers). */
  retain(live: Set<string>): void {
    for (const k of this.entries.keys()) if (!live.has(k)) this.entries.delete(k);
  }
}
