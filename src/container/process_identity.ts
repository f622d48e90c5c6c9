// The identity a container's first process really has, from /proc/<pid>/status: what
// ContainerStatus.user reports (KEP-3619), read from the kernel rather than copied from
// the request, so a runtime or image that changes it shows.
//
// Read right after `runc create`: runc's init has already called setgroups/setgid/setuid
// and waits on the exec fifo, so the process exists even for a container that exits at
// once on start.
import { readFile } from "node:fs/promises";
import { toContainer, type UserNamespaceMapping } from "../pod/userns_mapping.ts";

export interface ProcessIdentity {
  uid: number;
  gid: number;
  /** The supplementary groups (setgroups), in the kernel's order. */
  groups: number[];
}

/** The effective uid and gid and the groups of a /proc/<pid>/status text. */
export function parseProcStatus(text: string): ProcessIdentity | undefined {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim();
  const uids = field("Uid")?.split(/\s+/).map(Number);
  const gids = field("Gid")?.split(/\s+/).map(Number);
  const groups = field("Groups");
  if (uids === undefined || gids === undefined || groups === undefined) return undefined;
  const uid = uids[1];
  const gid = gids[1];
  if (uid === undefined || gid === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { uid, gid, groups: groups === "" ? [] : groups.split(/\s+/).map(Number).filter(Number.isInteger) };
}

/**
 * The identity of process `pid`, or undefined when it is gone or unreadable. /proc shows
 * host ids; with the pod's user namespace `mapping` they are turned back into the ids the
 * container sees (what ContainerStatus reports).
 */
export async function readProcessIdentity(pid: number, mapping?: UserNamespaceMapping): Promise<ProcessIdentity | undefined> {
  if (!(pid > 0)) return undefined;
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined);
  const host = text === undefined ? undefined : parseProcStatus(text);
  if (host === undefined || mapping === undefined) return host;
  const uid = toContainer(mapping.uids, host.uid);
  const gid = toContainer(mapping.gids, host.gid);
  if (uid === undefined || gid === undefined) return undefined;
  return { uid, gid, groups: host.groups.map((g) => toContainer(mapping.gids, g)).filter((g): g is number => g !== undefined) };
}
