// Linux capabilities of a container process: the default set, CRI add/drop (with
// "ALL"), privileged, and the intersection with what the runtime itself holds.

import { readFile } from "node:fs/promises";
import { invalidArgument } from "../../errors.ts";
import type { OciCapabilities } from "./oci_types.ts";

/** Every capability by its bit number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE. */
export const ALL_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
  "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
  "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

const KNOWN = new Set(ALL_CAPABILITIES);

/** The set a non-privileged container starts with (containerd's and Docker's default). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/**
 * "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN; "ALL" stays "ALL".
 * An unknown name is an invalid_argument error.
 */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === "ALL") return "ALL";
  const full = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (!KNOWN.has(full)) throw invalidArgument(`unknown capability ${JSON.stringify(name)}`);
  return full;
}

export interface CapabilityRequest {
  privileged: boolean;
  add: readonly string[];
  drop: readonly string[];
  /** CRI add_ambient_capabilities: raised in every set so an unprivileged user keeps them. */
  ambient?: readonly string[];
  /**
   * What the runtime process may grant (its permitted set); absent = everything. A
   * capability outside it would make runc's capset() fail with EPERM, so it is left out
   * and reported in `unavailable` instead.
   */
  available?: readonly string[];
}

export interface CapabilityResult {
  capabilities: OciCapabilities;
  /** Requested capabilities left out because the runtime does not hold them. */
  unavailable: string[];
}

/**
 * The process's capability sets. Privileged gets every capability and ignores add/drop.
 * Otherwise: start from the default set; "ALL" in add means every capability, "ALL" in
 * drop means none; then the named adds, then the named drops (so add ALL + drop X is all
 * but X, and drop ALL + add X is only X). Inheritable holds only the ambient ones.
 */
export function computeCapabilities(req: CapabilityRequest): CapabilityResult {
  let set: Set<string>;
  if (req.privileged) {
    set = new Set(ALL_CAPABILITIES);
  } else {
    const add = req.add.map(normalizeCapability);
    const drop = req.drop.map(normalizeCapability);
    set = new Set(DEFAULT_CAPABILITIES);
    if (add.includes("ALL")) set = new Set(ALL_CAPABILITIES);
    if (drop.includes("ALL")) set = new Set();
    for (const c of add) if (c !== "ALL") set.add(c);
    for (const c of drop) if (c !== "ALL") set.delete(c);
  }
  const ambientReq = (req.ambient ?? []).map(normalizeCapability).filter((c) => c !== "ALL");
  for (const c of ambientReq) set.add(c);

  const unavailable: string[] = [];
  if (req.available !== undefined) {
    const avail = new Set(req.available);
    for (const c of set) {
      if (!avail.has(c)) {
        set.delete(c);
        unavailable.push(c);
      }
    }
  }
  const ordered = ALL_CAPABILITIES.filter((c) => set.has(c));
  const ambient = ALL_CAPABILITIES.filter((c) => set.has(c) && ambientReq.includes(c));
  return {
    capabilities: {
      bounding: [...ordered],
      effective: [...ordered],
      permitted: [...ordered],
      inheritable: [...ambient],
      ambient,
    },
    unavailable,
  };
}

/** Capability names of a /proc/<pid>/status mask ("000001fffeffffff"). */
export function parseCapabilityMask(hex: string): string[] {
  if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw invalidArgument(`bad capability mask ${JSON.stringify(hex)}`);
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPABILITIES.filter((_, bit) => ((mask >> BigInt(bit)) & 1n) === 1n);
}

/** The permitted capabilities of this process (what runc, its child, can hand on). */
export async function readPermittedCapabilities(statusPath = "/proc/self/status"): Promise<string[]> {
  const text = await readFile(statusPath, "utf8");
  const m = /^CapPrm:\s*([0-9a-fA-F]+)\s*$/m.exec(text);
  if (m?.[1] === undefined) throw invalidArgument(`no CapPrm line in ${statusPath}`);
  return parseCapabilityMask(m[1]);
}
