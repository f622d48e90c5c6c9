// Where cgroups live on this node: the unified hierarchy (v2, detected by
// /sys/fs/cgroup/cgroup.controllers) or one v1 hierarchy per controller, found in
// /proc/self/mountinfo. Read once; the layout does not change while crib runs.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCgroupV1Mounts } from "./cgroup_files.ts";
import type { CgroupDirs } from "./cgroup_sample.ts";

export interface CgroupLayout {
  version: 1 | 2;
  /** The directories of the cgroup at `relative` (a path inside the hierarchy, "/crib/crib-ID"). */
  dirs(relative: string): CgroupDirs;
}

export function detectCgroupLayout(root = "/sys/fs/cgroup", mountinfoPath = "/proc/self/mountinfo"): CgroupLayout {
  if (existsSync(join(root, "cgroup.controllers"))) {
    return { version: 2, dirs: (rel) => ({ version: 2, dir: join(root, rel) }) };
  }
  let mounts = new Map<string, string>();
  try {
    mounts = parseCgroupV1Mounts(readFileSync(mountinfoPath, "utf8"));
  } catch {
    // no mountinfo: fall back to the usual mount points
  }
  const at = (controller: string): string | undefined => {
    const m = mounts.get(controller) ?? join(root, controller);
    return existsSync(m) ? m : undefined;
  };
  const base = { cpu: at("cpu"), cpuacct: at("cpuacct"), memory: at("memory"), pids: at("pids") };
  const under = (m: string | undefined, rel: string) => (m === undefined ? undefined : join(m, rel));
  return {
    version: 1,
    dirs: (rel) => ({ version: 1, cpu: under(base.cpu, rel), cpuacct: under(base.cpuacct, rel), memory: under(base.memory, rel), pids: under(base.pids, rel) }),
  };
}
