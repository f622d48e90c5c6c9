// Pod namespaces pinned to files, with no pause process (CRI-O's
// drop_infra_ctr): the daemon's JS thread unshares net/ipc/uts, sets the pod
// hostname and brings loopback up inside, bind-mounts /proc/thread-self/ns/*
// onto files under the pod's state dir, and joins its own namespaces again.
// Everything between unshare and setns is synchronous, so no other JS runs
// in the pod's namespaces.
// (libuv/Bun open files O_CLOEXEC, so the saved namespace fds do not leak to children.)
import { closeSync, constants, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errnoCode } from "../errors.ts";
import { MNT_DETACH, MS_BIND, mount, umount2 } from "../sys/mount.ts";
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS, setns, unshare } from "../sys/namespace.ts";
import { interfaceUp } from "../sys/netif.ts";
import { sethostname } from "../sys/uts.ts";

export type PinnedKind = "net" | "ipc" | "uts";
const FLAGS: Record<PinnedKind, number> = { net: CLONE_NEWNET, ipc: CLONE_NEWIPC, uts: CLONE_NEWUTS };

export type PinnedNamespaces = Partial<Record<PinnedKind, string>>;

/**
 * Create and pin new namespaces of `kinds` under `dir`; returns their paths.
 * `inside` runs (synchronously) while the thread is in them: pod sysctls.
 */
export function pinNamespaces(dir: string, kinds: PinnedKind[], hostname: string, inside?: () => void): PinnedNamespaces {
  if (kinds.length === 0) return {};
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const original = new Map<PinnedKind, number>();
  const pinned: PinnedNamespaces = {};
  try {
    for (const k of kinds) original.set(k, openSync(`/proc/thread-self/ns/${k}`, constants.O_RDONLY));
    for (const k of kinds) writeFileSync(join(dir, k), "", { mode: 0o444 });
    unshare(kinds.reduce((f, k) => f | FLAGS[k], 0));
    try {
      if (kinds.includes("uts") && hostname) sethostname(hostname);
      if (kinds.includes("net")) interfaceUp("lo");
      inside?.();
      for (const k of kinds) {
        mount(`/proc/thread-self/ns/${k}`, join(dir, k), null, MS_BIND);
        pinned[k] = join(dir, k);
      }
    } finally {
      for (const [k, fd] of original) setns(fd, FLAGS[k]);
    }
    return pinned;
  } catch (e) {
    unpinNamespaces(dir, kinds);
    throw e;
  } finally {
    for (const fd of original.values()) closeSync(fd);
  }
}

/** Unmount and remove pinned namespace files; missing ones are fine (idempotent). */
export function unpinNamespaces(dir: string, kinds: (PinnedKind | "pid" | "user")[] = ["net", "ipc", "uts"]): void {
  for (const k of kinds) {
    const p = join(dir, k);
    if (!existsSync(p)) continue;
    try {
      umount2(p, MNT_DETACH);
    } catch (e) {
      if (errnoCode(e) !== "EINVAL" && errnoCode(e) !== "ENOENT") throw e; // EINVAL: not mounted
    }
    rmSync(p, { force: true });
  }
}
