// UpdateContainerResources: `runc update --resources -` with the OCI form of
// the CRI resources. runc is a stateless CLI here; the monitor is not needed.
import type { LinuxContainerResources } from "../cri/types.ts";
import { internal } from "../errors.ts";
import { planResources } from "./spec/resources.ts";

export async function runcUpdate(runtime: { path: string; root: string }, id: string, resources: LinuxContainerResources): Promise<void> {
  const oci = planResources(resources, false);
  const proc = Bun.spawn([runtime.path, "--root", runtime.root, "update", "--resources", "-", id], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  proc.stdin.write(JSON.stringify(oci));
  await proc.stdin.end();
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw internal(`runc update of container ${id} failed (exit ${code}): ${stderr.trim()}`);
}
