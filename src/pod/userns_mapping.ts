// The uid/gid mapping of a pod user namespace (hostUsers: false, KEP-127) as the
// kubelet sends it in NamespaceOption.userns_options, checked: crib supports mode POD
// with one range per kind that maps container id 0, never the host's root. Pure: used by
// the pod component (which makes the namespace) and the OCI spec builder.
import { NamespaceMode, type IDMapping, type UserNamespace } from "../protocol/types.ts";
import { invalidArgument } from "../errors.ts";

/** One id range: container ids [containerId, containerId+size) are host ids from hostId. */
export interface IdRange { hostId: number; containerId: number; size: number }
export interface UserNamespaceMapping { uids: IdRange; gids: IdRange }

const MODE_NAMES: Record<number, string> = { 0: "POD", 1: "CONTAINER", 2: "NODE", 3: "TARGET" };

function oneRange(list: readonly IDMapping[], field: string): IdRange {
  if (list.length !== 1) throw invalidArgument(`${field}: exactly one mapping is supported, got ${list.length}`);
  const m = list[0]!;
  if (m.container_id !== 0) throw invalidArgument(`${field}[0]: container id 0 (root) must be mapped, but the mapping starts at container id ${m.container_id}`);
  if (m.length < 1) throw invalidArgument(`${field}[0]: length is 0`);
  if (m.host_id === 0) throw invalidArgument(`${field}[0]: host id 0 would map the host's root into the pod`);
  if (m.host_id + m.length > 2 ** 32 - 1) throw invalidArgument(`${field}[0]: host ids ${m.host_id}+${m.length} run past 4294967294`);
  return { hostId: m.host_id, containerId: 0, size: m.length };
}

/**
 * The mapping of a NamespaceOption.userns_options: undefined for mode NODE (or unset),
 * INVALID_ARGUMENT naming the field for CONTAINER/TARGET or a mapping crib cannot honour.
 */
export function podUserNamespace(userns: UserNamespace | null | undefined, where: string): UserNamespaceMapping | undefined {
  if (userns === null || userns === undefined || userns.mode === NamespaceMode.NODE) return undefined;
  const field = `${where}.namespace_options.userns_options`;
  if (userns.mode !== NamespaceMode.POD) throw invalidArgument(`${field}.mode ${MODE_NAMES[userns.mode] ?? userns.mode} is not supported: a user namespace is per pod (POD) or the node's (NODE)`);
  return { uids: oneRange(userns.uids, `${field}.uids`), gids: oneRange(userns.gids, `${field}.gids`) };
}

/** Container id `id` as the host sees it (for ids inside the range). */
export function toHost(r: IdRange, id: number): number {
  return id - r.containerId + r.hostId;
}

/** Host id `id` as the container sees it; undefined when the range does not map it. */
export function toContainer(r: IdRange, id: number): number | undefined {
  return id >= r.hostId && id < r.hostId + r.size ? id - r.hostId + r.containerId : undefined;
}
