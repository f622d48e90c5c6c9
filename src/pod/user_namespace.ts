// Pod user namespaces (hostUsers: false, KEP-127): the kubelet's mapping checked, and
// the pod's user, network, IPC and UTS namespaces made together, so the pod's user
// namespace owns the others (sysfs and mqueue mount inside the container only then).
//
// The daemon is multi-threaded and cannot enter a new user namespace itself, so a child
// is cloned into all four (sys/idmap.ts), its maps are written from here, the four are
// pinned onto files, and the child is killed. Hostname, loopback and sysctls are then set
// from the daemon thread entering the pinned net/uts/ipc namespaces: root of the initial
// user namespace holds every capability in namespaces owned by a child of it.
import { closeSync, constants, mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cloneIntoNewUserNamespace } from "../sys/idmap.ts";
import { MS_BIND, mount } from "../sys/mount.ts";
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS, setns } from "../sys/namespace.ts";
import { interfaceUp } from "../sys/netif.ts";
import { waitPid } from "../sys/process.ts";
import { sethostname } from "../sys/uts.ts";
import { unpinNamespaces, type PinnedNamespaces } from "./namespaces.ts";
import type { IdRange, UserNamespaceMapping } from "./userns_mapping.ts";

const KINDS = ["user", "net", "ipc", "uts"] as const;

/**
 * New user, net, ipc and uts namespaces for a pod with `mapping`, pinned under `dir`;
 * `inside` runs (synchronously) in the net/ipc/uts ones after the hostname and loopback
 * are set: pod sysctls. Returns the pinned paths, `user` included.
 */
export function pinUserNamespacePod(dir: string, mapping: UserNamespaceMapping, hostname: string, inside?: () => void): PinnedNamespaces & { user: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pid = cloneIntoNewUserNamespace(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS);
  try {
    const line = (r: IdRange) => `${r.containerId} ${r.hostId} ${r.size}\n`;
    writeFileSync(`/proc/${pid}/uid_map`, line(mapping.uids));
    writeFileSync(`/proc/${pid}/gid_map`, line(mapping.gids));
    for (const k of KINDS) {
      writeFileSync(join(dir, k), "", { mode: 0o444 });
      mount(`/proc/${pid}/ns/${k}`, join(dir, k), null, MS_BIND);
    }
    enterPodNamespaces(dir, () => {
      if (hostname) sethostname(hostname);
      interfaceUp("lo");
      inside?.();
    });
    return { user: join(dir, "user"), net: join(dir, "net"), ipc: join(dir, "ipc"), uts: join(dir, "uts") };
  } catch (e) {
    unpinNamespaces(dir, [...KINDS]);
    throw e;
  } finally {
    process.kill(pid, "SIGKILL");
    try {
      waitPid(pid, 0);
    } catch {
      // reaped already
    }
  }
}

const FLAGS = { net: CLONE_NEWNET, ipc: CLONE_NEWIPC, uts: CLONE_NEWUTS } as const;

/** Run `fn` with the daemon thread in the pinned net, ipc and uts namespaces under `dir`. */
function enterPodNamespaces(dir: string, fn: () => void): void {
  const kinds = ["net", "ipc", "uts"] as const;
  const original = new Map<(typeof kinds)[number], number>();
  const target = new Map<(typeof kinds)[number], number>();
  try {
    for (const k of kinds) original.set(k, openSync(`/proc/thread-self/ns/${k}`, constants.O_RDONLY));
    for (const k of kinds) target.set(k, openSync(join(dir, k), constants.O_RDONLY));
    for (const k of kinds) setns(target.get(k)!, FLAGS[k]);
    try {
      fn();
    } finally {
      for (const [k, fd] of original) setns(fd, FLAGS[k]);
    }
  } finally {
    for (const fd of [...original.values(), ...target.values()]) closeSync(fd);
  }
}
