// Whether this node's cgroups have the hugetlb controller, which runc needs for any
// hugepage limit (even a limit of 0): without it runc fails "cannot set hugetlb limit:
// container could not join or create cgroup". Kernels and distributions leave it out
// (Debian's hybrid v1 layout mounts no hugetlb hierarchy; v2 delegations often omit it).
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";

export interface CgroupPaths {
  /** The cgroup mount root. */
  root: string;
  mountinfo: string;
}

const DEFAULT_PATHS: CgroupPaths = { root: "/sys/fs/cgroup", mountinfo: "/proc/self/mountinfo" };

/** cgroup v1: a `cgroup` mount whose super options name hugetlb (fields after " - "). */
export function hugetlbMountedV1(mountinfo: string): boolean {
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [fsType, , superOptions = ""] = line.slice(sep + 3).split(" ");
    if (fsType === "cgroup" && superOptions.split(",").includes("hugetlb")) return true;
  }
  return false;
}

/** cgroup v2: the controllers a child of that cgroup may use ("cpu io memory hugetlb ..."). */
export function hasController(controllersFile: string, name: string): boolean {
  return controllersFile.split(/\s+/).includes(name);
}

/**
 * Whether a container cgroup under a parent can get hugepage limits. v1's answer is read
 * once (hierarchies are mounted at boot); v2's per parent, since delegation varies.
 */
export class HugetlbProbe {
  private v1: Promise<boolean> | undefined;

  constructor(private readonly paths: CgroupPaths = DEFAULT_PATHS) {}

  /**
   * `parent` is a path inside the hierarchy, such as the pod's cgroup_parent
   * "/kubepods/besteffort/pod1" (a systemd slice name finds no directory and falls back to
   * the root's answer). On v2 the nearest existing ancestor's cgroup.controllers answers:
   * runc creates the missing levels and enables in each what the level above offers, so
   * a controller missing there is missing below too.
   */
  async available(parent: string): Promise<boolean> {
    const { root, mountinfo } = this.paths;
    const rootControllers = await readFile(join(root, "cgroup.controllers"), "utf8").catch(() => undefined);
    if (rootControllers === undefined) {
      this.v1 ??= readFile(mountinfo, "utf8").then(hugetlbMountedV1, () => false);
      return this.v1;
    }
    // join("/", parent) first: no ".." out of the hierarchy (the parent comes from the request).
    for (let dir = join(root, join("/", parent)); dir.startsWith(`${root}/`); dir = dirname(dir)) {
      const controllers = await readFile(join(dir, "cgroup.controllers"), "utf8").catch(() => undefined);
      if (controllers !== undefined) return hasController(controllers, "hugetlb");
    }
    return hasController(rootControllers, "hugetlb");
  }
}
