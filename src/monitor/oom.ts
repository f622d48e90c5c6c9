// Did the kernel OOM-kill something in a container's cgroup? Read once when its init
// exits, before `runc delete` removes the cgroup. cgroup v1 keeps the count in the memory
// controller's memory.oom_control ("oom_kill N"); v2 in memory.events ("oom_kill N").

import { existsSync, readFileSync } from "node:fs";

const CGROUP_ROOT = "/sys/fs/cgroup";

/** "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", as systemd lays slices out. */
export function expandSlice(slice: string): string {
  if (slice === "" || slice === "-.slice") return "/";
  const base = slice.endsWith(".slice") ? slice.slice(0, -".slice".length) : slice;
  const parts = base.split("-");
  let path = "";
  let prefix = "";
  for (const p of parts) {
    prefix = prefix === "" ? p : `${prefix}-${p}`;
    path += `/${prefix}.slice`;
  }
  return path;
}

/**
 * The cgroup path (relative to a hierarchy's root) that runc gives a container:
 * an absolute cgroupfs path as is; "slice:prefix:name" for the systemd driver; a
 * relative path under `ownCgroup` (the cgroup runc itself ran in, i.e. ours).
 */
export function containerCgroupPath(cgroupsPath: string | undefined, id: string, systemd: boolean, ownCgroup = "/"): string {
  const cg = cgroupsPath ?? "";
  if (systemd) {
    const [slice = "", prefix = "", name = ""] = cg.split(":");
    const sliceDir = expandSlice(slice === "" ? "system.slice" : slice);
    // runc names the unit "<prefix>-<name>.scope" (or uses a ".slice" name as is).
    const unit = name.endsWith(".slice") ? name : `${prefix}-${name === "" ? id : name}.scope`;
    return `${sliceDir === "/" ? "" : sliceDir}/${unit}`;
  }
  if (cg === "") return `/${id}`;
  if (cg.startsWith("/")) return cg;
  return `${ownCgroup === "/" ? "" : ownCgroup}/${cg}`;
}

/** This process's cgroup in the memory hierarchy (v1) or the unified one (v2). */
function ownMemoryCgroup(unified: boolean): string {
  try {
    for (const line of readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
      const [, controllers = "", path = "/"] = line.split(":");
      if (unified ? line.startsWith("0::") : controllers.split(",").includes("memory")) return path;
    }
  } catch {
    // fall through
  }
  return "/";
}

/** The OOM-kill counter file of the container's cgroup (it may not exist). */
export function oomCounterFile(bundle: string, id: string, systemd: boolean): string | undefined {
  let cgroupsPath: string | undefined;
  try {
    const spec = JSON.parse(readFileSync(`${bundle}/config.json`, "utf8")) as { linux?: { cgroupsPath?: unknown } };
    const p = spec.linux?.cgroupsPath;
    cgroupsPath = typeof p === "string" ? p : undefined;
  } catch {
    return undefined;
  }
  const unified = existsSync(`${CGROUP_ROOT}/cgroup.controllers`);
  const rel = containerCgroupPath(cgroupsPath, id, systemd, ownMemoryCgroup(unified));
  return unified ? `${CGROUP_ROOT}${rel}/memory.events` : `${CGROUP_ROOT}/memory${rel}/memory.oom_control`;
}

/** Parses "oom_kill N" out of memory.oom_control / memory.events. */
export function parseOomKills(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

export function oomKilled(counterFile: string | undefined): boolean {
  if (counterFile === undefined) return false;
  try {
    return parseOomKills(readFileSync(counterFile, "utf8")) > 0;
  } catch {
    return false;
  }
}
