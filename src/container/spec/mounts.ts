// A container's mounts: the standard OCI set (/proc, /dev, /dev/pts, /dev/shm,
// /dev/mqueue, /sys, /sys/fs/cgroup), the pod's files (/etc/hosts, /etc/resolv.conf,
// /etc/hostname, /dev/shm) and the CRI mounts; and the masked and read-only paths.

import { posix } from "node:path";
import { CribError, failedPrecondition, internal, invalidArgument } from "../../errors.ts";
import type { Mount } from "../../protocol/types.ts";
import { MountPropagation } from "../../protocol/types.ts";
import type { OciMount } from "./oci_types.ts";

/** Paths hidden from non-privileged containers (containerd's and Docker's defaults). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
  "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
  "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];

/** Paths read-only in non-privileged containers. */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
];

/** The kernel filesystems every container gets; /sys and the cgroup fs are rw only when privileged. */
export function defaultMounts(privileged: boolean): OciMount[] {
  const ro = privileged ? [] : ["ro"];
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", ...ro] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", ...ro] },
  ];
}

export interface SandboxFiles {
  hosts?: string;
  resolvConf?: string;
  hostname?: string;
  /** The pod's /dev/shm (shared by its containers); absent = a private tmpfs. */
  shm?: string;
}

export interface MountPlan {
  mounts: OciMount[];
  /** "rshared" or "rslave" when a CRI mount needs propagation; absent = runtime default. */
  rootfsPropagation?: string;
}

const PROPAGATION: Record<number, string> = {
  [MountPropagation.PROPAGATION_PRIVATE]: "rprivate",
  [MountPropagation.PROPAGATION_HOST_TO_CONTAINER]: "rslave",
  [MountPropagation.PROPAGATION_BIDIRECTIONAL]: "rshared",
};

function cleanAbsolute(p: string, what: string): string {
  if (p === "" || !p.startsWith("/")) throw invalidArgument(`${what} ${JSON.stringify(p)} is not an absolute path`);
  if (p.includes("\0")) throw invalidArgument(`${what} ${JSON.stringify(p)} contains a NUL byte`);
  return posix.normalize(p).replace(/(.)\/+$/, "$1");
}

/** Whether the runtime handler makes recursive read-only mounts, and why not. */
export interface RroSupport { supported: boolean; reason: string }

/**
 * One CRI mount as an OCI bind mount. selinux_relabel is ignored (no SELinux support).
 * `rro`: whether the pod's runtime handler can honour recursive_read_only.
 */
export function criMountToOci(m: Mount, rro: RroSupport = { supported: true, reason: "" }, imageSource?: string): OciMount {
  const destination = cleanAbsolute(m.container_path, "mount container_path");
  if (m.image !== null && m.image.image !== "") {
    // The caller mounted the image (and resolved image_sub_path in it): always read-only
    // and noexec, as Kubernetes asks of image volumes.
    if (imageSource === undefined) throw internal(`image volume ${m.image.image} at ${destination} was not mounted`);
    return { destination, type: "bind", source: imageSource, options: ["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"] };
  }
  if (m.uidMappings.length > 0 || m.gidMappings.length > 0) {
    throw new CribError("unimplemented", `id-mapped mounts (at ${destination}) are not supported by crib yet`);
  }
  const source = cleanAbsolute(m.host_path, `mount host_path for ${destination}`);
  const propagation = PROPAGATION[m.propagation];
  if (propagation === undefined) throw invalidArgument(`mount ${destination}: unknown propagation ${String(m.propagation)}`);
  const options = ["rbind", propagation, m.readonly ? "ro" : "rw"];
  if (m.recursive_read_only) {
    if (!m.readonly) throw invalidArgument(`mount ${destination}: recursive_read_only needs readonly`);
    if (m.propagation !== MountPropagation.PROPAGATION_PRIVATE) {
      throw invalidArgument(`mount ${destination}: recursive_read_only needs private propagation`);
    }
    if (!rro.supported) throw failedPrecondition(`mount ${destination}: recursive_read_only is not available with this runtime handler: ${rro.reason}`);
    options.push("rro");
  }
  return { destination, type: "bind", source, options };
}

/** How deep a container path is ("/" is 0): mounts go parent first. */
export const depth = (p: string) => (p === "/" ? 0 : p.split("/").length - 1);

/**
 * All mounts, in the order the runtime performs them: the defaults first (minus those a
 * CRI mount replaces: same destination, or anything under /dev when /dev is mounted),
 * then the pod files and CRI mounts sorted by depth so a parent is mounted before its
 * children. Pod files are skipped when a CRI mount already covers their path; they are
 * read-only when the rootfs is.
 */
export function planMounts(opts: {
  criMounts: readonly Mount[];
  privileged: boolean;
  readonlyRootfs: boolean;
  sandboxFiles: SandboxFiles;
  /** Whether recursive read-only mounts work with the pod's runtime handler; default yes. */
  rro?: RroSupport;
  /** Host sources of the image volumes among criMounts (mounted by the caller). */
  imageSources?: ReadonlyMap<Mount, string>;
}): MountPlan {
  const cri = opts.criMounts.map((m) => criMountToOci(m, opts.rro, opts.imageSources?.get(m)));
  const criDest = new Set(cri.map((m) => m.destination));

  const extra: OciMount[] = [];
  const podFile = (destination: string, source: string | undefined, readonly: boolean) => {
    if (source === undefined || source === "" || criDest.has(destination)) return;
    const src = cleanAbsolute(source, `pod file for ${destination}`);
    extra.push({ destination, type: "bind", source: src, options: ["rbind", "rprivate", readonly ? "ro" : "rw"] });
  };
  podFile("/etc/hosts", opts.sandboxFiles.hosts, opts.readonlyRootfs);
  podFile("/etc/resolv.conf", opts.sandboxFiles.resolvConf, opts.readonlyRootfs);
  podFile("/etc/hostname", opts.sandboxFiles.hostname, opts.readonlyRootfs);
  if (opts.sandboxFiles.shm !== undefined && opts.sandboxFiles.shm !== "" && !criDest.has("/dev/shm")) {
    const src = cleanAbsolute(opts.sandboxFiles.shm, "pod /dev/shm");
    extra.push({ destination: "/dev/shm", type: "bind", source: src, options: ["rbind", "rprivate", "nosuid", "nodev", "noexec", "rw"] });
  }

  const added = [...extra, ...cri];
  const addedDest = new Set(added.map((m) => m.destination));
  const devReplaced = addedDest.has("/dev");
  const defaults = defaultMounts(opts.privileged).filter(
    (m) => !addedDest.has(m.destination) && !(devReplaced && m.destination.startsWith("/dev/")),
  );
  // Array.prototype.sort is stable: equal depths keep the request's order.
  const sorted = [...added].sort((a, b) => depth(a.destination) - depth(b.destination));

  let rootfsPropagation: string | undefined;
  for (const m of opts.criMounts) {
    if (m.propagation === MountPropagation.PROPAGATION_BIDIRECTIONAL) rootfsPropagation = "rshared";
    else if (m.propagation === MountPropagation.PROPAGATION_HOST_TO_CONTAINER && rootfsPropagation === undefined) rootfsPropagation = "rslave";
  }
  const plan: MountPlan = { mounts: [...defaults, ...sorted] };
  if (rootfsPropagation !== undefined) plan.rootfsPropagation = rootfsPropagation;
  return plan;
}

/**
 * Masked and read-only paths: none when privileged; else the CRI lists when given (the
 * kubelet sends its own defaults); else crib's. An empty list cannot be told from an
 * unset one on the wire, so it gets the defaults, as in containerd.
 */
export function planMaskedPaths(opts: {
  privileged: boolean;
  masked: readonly string[];
  readonly: readonly string[];
}): { maskedPaths: string[]; readonlyPaths: string[] } {
  if (opts.privileged) return { maskedPaths: [], readonlyPaths: [] };
  const check = (list: readonly string[], what: string) => list.map((p) => cleanAbsolute(p, what));
  return {
    maskedPaths: opts.masked.length > 0 ? check(opts.masked, "masked path") : [...DEFAULT_MASKED_PATHS],
    readonlyPaths: opts.readonly.length > 0 ? check(opts.readonly, "readonly path") : [...DEFAULT_READONLY_PATHS],
  };
}
