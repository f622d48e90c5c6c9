// cgroup resources, oom_score_adj and sysctls of a container from its CRI config.

import { failedPrecondition, invalidArgument } from "../../errors.ts";
import type { HugepageLimit, LinuxContainerResources } from "../../protocol/types.ts";
import type { OciCpu, OciHugepageLimit, OciMemory, OciResources } from "./oci_types.ts";

/** int64 from the CRI as a JSON-safe number (config.json numbers are doubles for most readers). */
function safeNumber(v: bigint, field: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw invalidArgument(`resources.${field} ${v} is out of range`);
  }
  return Number(v);
}

/** A cpuset list: "0-3,6". */
const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** What this node's cgroups can apply (runc fails writing a file of a missing controller). */
export interface CgroupSupport {
  /** The memory swap controller (memory.memsw.* or memory.swap.max). */
  swap: boolean;
  /** The hugetlb controller (see container/cgroup_controllers.ts). */
  hugetlb: boolean;
}

/**
 * CPU, memory, hugepage and unified (cgroup v2 key/value) limits; zero means unset.
 * Swap follows containerd: with a memory limit and no swap limit, swap = the memory
 * limit (no swapping); an explicit memory_swap_limit_in_bytes wins; both only where the
 * swap controller exists. Hugepage limits: see planHugepageLimits.
 * Device rules are added by the caller.
 */
export function planResources(r: LinuxContainerResources | null, support: CgroupSupport): OciResources {
  const out: OciResources = {};
  if (r === null) return out;
  const cpu: OciCpu = {};
  if (r.cpu_shares > 0n) cpu.shares = safeNumber(r.cpu_shares, "cpu_shares");
  if (r.cpu_quota !== 0n) cpu.quota = safeNumber(r.cpu_quota, "cpu_quota");
  if (r.cpu_period > 0n) cpu.period = safeNumber(r.cpu_period, "cpu_period");
  if (r.cpu_period < 0n) throw invalidArgument(`resources.cpu_period ${r.cpu_period} is negative`);
  // The kernel's CFS bounds (µs), checked here so a bad value is the caller's error, not runc's.
  if (r.cpu_period > 0n && (r.cpu_period < 1000n || r.cpu_period > 1_000_000n)) throw invalidArgument(`resources.cpu_period ${r.cpu_period} is outside 1000..1000000 (µs)`);
  if (r.cpu_shares > 0n && (r.cpu_shares < 2n || r.cpu_shares > 262_144n)) throw invalidArgument(`resources.cpu_shares ${r.cpu_shares} is outside the kernel's 2..262144`);
  if (r.cpu_quota !== 0n && r.cpu_quota !== -1n && r.cpu_quota < 1000n) throw invalidArgument(`resources.cpu_quota ${r.cpu_quota} is below the kernel's minimum of 1000 (µs); -1 means no limit`);
  for (const [field, list] of [["cpuset_cpus", r.cpuset_cpus], ["cpuset_mems", r.cpuset_mems]] as const) {
    if (list !== "" && !CPU_LIST.test(list)) throw invalidArgument(`resources.${field} ${JSON.stringify(list.slice(0, 100))} is not a list like "0-3,6"`);
  }
  if (r.cpuset_cpus !== "") cpu.cpus = r.cpuset_cpus;
  if (r.cpuset_mems !== "") cpu.mems = r.cpuset_mems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  const memory: OciMemory = {};
  if (r.memory_limit_in_bytes < 0n) throw invalidArgument(`resources.memory_limit_in_bytes ${r.memory_limit_in_bytes} is negative`);
  if (r.memory_limit_in_bytes > 0n) {
    memory.limit = safeNumber(r.memory_limit_in_bytes, "memory_limit_in_bytes");
    if (support.swap && r.memory_swap_limit_in_bytes === 0n) memory.swap = memory.limit;
  }
  if (support.swap && r.memory_swap_limit_in_bytes !== 0n) {
    memory.swap = safeNumber(r.memory_swap_limit_in_bytes, "memory_swap_limit_in_bytes");
  }
  if (Object.keys(memory).length > 0) out.memory = memory;

  const hugepages = planHugepageLimits(r.hugepage_limits, support.hugetlb);
  if (hugepages.length > 0) out.hugepageLimits = hugepages;
  const unifiedKeys = Object.keys(r.unified);
  if (unifiedKeys.length > 0) {
    for (const k of unifiedKeys) {
      // A key names a file in the container's cgroup directory: no path tricks.
      if (!/^[a-z0-9_]+\.[a-z0-9_.]+$/i.test(k)) throw invalidArgument(`unified cgroup key ${JSON.stringify(k)} is not a cgroup file name`);
    }
    out.unified = { ...r.unified };
  }
  return out;
}

/**
 * Hugepage limits for the OCI spec. The kubelet sends one entry per page size the kernel
 * knows, with limit 0 when the pod asks for no hugepages. Without the hugetlb controller
 * runc cannot create the cgroup at all, so (like containerd's
 * tolerate_missing_hugetlb_controller) zero limits are dropped there: a limit of 0 only
 * forbids what such a node cannot hand out anyway. A non-zero limit is a promise the node
 * cannot keep, so it fails rather than being ignored.
 */
export function planHugepageLimits(limits: readonly HugepageLimit[], hugetlb: boolean): OciHugepageLimit[] {
  const out: OciHugepageLimit[] = [];
  for (const h of limits) {
    if (h.page_size === "") continue;
    if (!/^\d+[KMG]B$/.test(h.page_size)) throw invalidArgument(`hugepage page_size ${JSON.stringify(h.page_size)} is not like "2MB"`);
    const limit = safeNumber(h.limit, `hugepage_limits[${h.page_size}]`);
    if (hugetlb) out.push({ pageSize: h.page_size, limit });
    else if (limit > 0) {
      throw failedPrecondition(
        `hugepage limit of ${limit} bytes for page size ${h.page_size} cannot be applied: this node's cgroups have no hugetlb controller ` +
          `(cgroup v1: no hugetlb hierarchy mounted; cgroup v2: "hugetlb" not in the parent cgroup's cgroup.controllers); ` +
          `enable it or run the pod without hugepages-${h.page_size.slice(0, -1)}i`,
      );
    }
  }
  return out;
}

export interface OomScore {
  value: number;
  /** True when the request was raised to what the runtime may set. */
  clamped: boolean;
}

/**
 * The oom_score_adj for the container process. Without CAP_SYS_RESOURCE a process may
 * not go below its parent's value, so when the runtime cannot lower it the value is
 * raised to `current` (the value runc will inherit) rather than letting runc fail.
 */
export function planOomScoreAdj(requested: bigint | number, canLower: boolean, current: number): OomScore {
  const n = typeof requested === "bigint" ? requested : BigInt(Math.trunc(requested));
  if (n < -1000n || n > 1000n) throw invalidArgument(`oom_score_adj ${n} is out of range -1000..1000`);
  const value = Number(n);
  if (!canLower && value < current) return { value: current, clamped: true };
  return { value, clamped: false };
}

const IPC_SYSCTL = /^(kernel\.shm[a-z_]*|kernel\.msg[a-z_]*|kernel\.sem|fs\.mqueue\.[a-z_]+)$/;

/** "net/ipv4/ip_forward" -> "net.ipv4.ip_forward" (the slash form swaps '.' and '/'). */
export function normalizeSysctlName(name: string): string {
  if (!name.includes("/")) return name;
  return name.replace(/[./]/g, (c) => (c === "/" ? "." : "/"));
}

/**
 * The pod's sysctls, which the runtime writes inside the container's namespaces. Only
 * namespaced ones are allowed: IPC ones (kernel.shm*, kernel.msg*, kernel.sem,
 * fs.mqueue.*) without host IPC and net.* without host network. Anything else would
 * change the whole node, so it is refused.
 */
export function planSysctls(
  sysctls: Record<string, string>,
  ns: { hostNetwork: boolean; hostIpc: boolean },
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [rawName, value] of Object.entries(sysctls)) {
    const name = normalizeSysctlName(rawName);
    // Components of letters, digits, '_' and '-' ("eth0/1" after normalising a VLAN name).
    if (!/^[A-Za-z0-9_-]+([./][A-Za-z0-9_-]+)+$/.test(name)) {
      throw invalidArgument(`sysctl ${JSON.stringify(rawName)} is not a valid sysctl name`);
    }
    if (/[\0\n]/.test(value)) throw invalidArgument(`sysctl ${name}: value contains a NUL or newline`);
    if (IPC_SYSCTL.test(name)) {
      if (ns.hostIpc) throw invalidArgument(`sysctl ${name} is not allowed with the host IPC namespace: it would change the node`);
    } else if (name.startsWith("net.")) {
      if (ns.hostNetwork) throw invalidArgument(`sysctl ${name} is not allowed with the host network: it would change the node`);
    } else {
      throw invalidArgument(`sysctl ${name} is not namespaced: only kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* are allowed`);
    }
    out[name] = value;
  }
  return out;
}
