// UpdateContainerResources: `runc update --resources -` with the OCI form of
// the CRI resources. runc is a stateless CLI here; the monitor is not needed.
import type { LinuxContainerResources } from "../protocol/types.ts";
import { failedPrecondition, internal, invalidArgument, notFound } from "../errors.ts";
import { runtimeName } from "../monitor/runc.ts";
import { childEnv } from "../util/child_env.ts";
import { planResources } from "./spec/resources.ts";

/** `hugetlb`: whether the container's cgroup has the hugetlb controller (see cgroup_controllers.ts). */
export async function runcUpdate(runtime: { path: string; root: string }, id: string, resources: LinuxContainerResources, hugetlb: boolean): Promise<void> {
  const oci = planResources(resources, { swap: false, hugetlb });
  const proc = Bun.spawn([runtime.path, "--root", runtime.root, "update", "--resources", "-", id], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: childEnv() });
  proc.stdin.write(JSON.stringify(oci));
  await proc.stdin.end();
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code === 0) return;
  const msg = `${runtimeName(runtime)} update of container ${id} failed (exit ${code}): ${stderr.trim()}`;
  if (/does not exist|not exist/.test(stderr)) throw notFound(msg);
  if (/not running|is stopped|is paused/.test(stderr)) throw failedPrecondition(msg);
  // The kernel refused a value (below current usage, beyond the machine's CPUs, out of range): the request's fault.
  if (/failed to write|invalid argument|out of range|resource busy|cannot set|unable to set|maximum allowed|minimum allowed/i.test(stderr)) throw invalidArgument(msg);
  throw internal(msg);
}
