// Linux namespaces of a container from the CRI NamespaceOption.
//
//   mode       network / ipc                 pid
//   NODE       host's (no entry)             host's (no entry)
//   POD        the pod's pinned ns, if given  the pod's pid ns (pod-shared), if given
//   CONTAINER  a new one                      a new one
//   TARGET     invalid                        the target container's pid ns (required)
//
// UTS follows the network (hostNetwork pods see the node's hostname); mount is always
// new; cgroup is new when asked (cgroup v2 hosts, as containerd does). A user namespace
// (userns_options mode POD, hostUsers: false) is the pod's, joined by path, with its
// mapping repeated in the spec (runc needs it to know the host ids of root).

import { invalidArgument } from "../../errors.ts";
import { podUserNamespace, type UserNamespaceMapping } from "../../pod/userns_mapping.ts";
import type { NamespaceOption } from "../../protocol/types.ts";
import { NamespaceMode } from "../../protocol/types.ts";
import type { OciNamespace } from "./oci_types.ts";

export interface NamespacePaths {
  network?: string;
  ipc?: string;
  uts?: string;
  /** The pod's pid ns (mode POD) or the target container's (mode TARGET). */
  pid?: string;
  /** The pod's user namespace, when it has one. */
  user?: string;
}

export interface NamespacePlan {
  namespaces: OciNamespace[];
  hostNetwork: boolean;
  hostIpc: boolean;
  hostPid: boolean;
  hostUts: boolean;
  /** The pod user namespace's mapping, when the container runs in one. */
  userNamespace?: UserNamespaceMapping;
}

const MODE_NAMES: Record<number, string> = { 0: "POD", 1: "CONTAINER", 2: "NODE", 3: "TARGET" };
const modeName = (m: number) => MODE_NAMES[m] ?? String(m);

function sharedOrNew(type: OciNamespace["type"], mode: number, path: string | undefined): OciNamespace | undefined {
  switch (mode) {
    case NamespaceMode.NODE:
      return undefined;
    case NamespaceMode.POD:
      return path !== undefined && path !== "" ? { type, path } : { type };
    case NamespaceMode.CONTAINER:
      return { type };
    default:
      throw invalidArgument(`namespace mode ${modeName(mode)} is not valid for the ${type} namespace`);
  }
}

export function planNamespaces(
  options: NamespaceOption | null,
  paths: NamespacePaths,
  cgroupNamespace = false,
): NamespacePlan {
  const network = options?.network ?? NamespaceMode.POD;
  const ipc = options?.ipc ?? NamespaceMode.POD;
  const pid = options?.pid ?? NamespaceMode.POD;
  const userns = podUserNamespace(options?.userns_options, "CreateContainer: linux.security_context");
  const namespaces: OciNamespace[] = [{ type: "mount" }];
  if (userns !== undefined) {
    if (paths.user === undefined) throw invalidArgument("CreateContainer: linux.security_context.namespace_options.userns_options asks for the pod's user namespace, but the pod sandbox has none (it was run with hostUsers: true)");
    namespaces.push({ type: "user", path: paths.user });
  } else if (paths.user !== undefined) {
    // The pod's network, IPC and UTS namespaces belong to its user namespace.
    throw invalidArgument("CreateContainer: the pod sandbox has a user namespace (hostUsers: false), but linux.security_context.namespace_options.userns_options asks for the node's");
  }
  const net = sharedOrNew("network", network, paths.network);
  if (net) namespaces.push(net);
  const ipcNs = sharedOrNew("ipc", ipc, paths.ipc);
  if (ipcNs) namespaces.push(ipcNs);
  // The pod's UTS namespace goes with its network: host network, host hostname.
  const uts = network === NamespaceMode.NODE ? undefined : sharedOrNew("uts", NamespaceMode.POD, paths.uts);
  if (uts) namespaces.push(uts);

  switch (pid) {
    case NamespaceMode.NODE:
      break;
    case NamespaceMode.CONTAINER:
      namespaces.push({ type: "pid" });
      break;
    case NamespaceMode.POD:
      namespaces.push(paths.pid ? { type: "pid", path: paths.pid } : { type: "pid" });
      break;
    case NamespaceMode.TARGET:
      if (!paths.pid) {
        throw invalidArgument(`pid namespace mode TARGET (target ${JSON.stringify(options?.target_id ?? "")}) needs the target container's pid namespace`);
      }
      namespaces.push({ type: "pid", path: paths.pid });
      break;
    default:
      throw invalidArgument(`unknown pid namespace mode ${String(pid)}`);
  }
  if (cgroupNamespace) namespaces.push({ type: "cgroup" });

  return {
    namespaces,
    hostNetwork: network === NamespaceMode.NODE,
    hostIpc: ipc === NamespaceMode.NODE,
    hostPid: pid === NamespaceMode.NODE,
    hostUts: uts === undefined,
    ...(userns !== undefined ? { userNamespace: userns } : {}),
  };
}
