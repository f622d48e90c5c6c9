// The CRI contract as clients really use it (issue 14): hugepage limits on a node
// without the hugetlb controller, an empty hostname, run_as_group without a user.
// Against the compiled daemon, under real runc.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { HugetlbProbe } from "../../src/container/cgroup_controllers.ts";
import { ContainerState } from "../../src/protocol/types.ts";
import { containerConfig, criError, logLines, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, shutdownCrib, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";

let reg: StartedRegistry;
let crib: CribInstance;
let image: PushedImage;
/** Whether this node's root cgroup has hugetlb (the test bed's does not). */
let nodeHasHugetlb = true;

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "contract/busybox:1", { layers: [busyboxLayer()] });
  crib = await startCrib();
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
  nodeHasHugetlb = await new HugetlbProbe().available("/");
});

afterAll(async () => {
  await shutdownCrib(crib);
  await reg?.stop();
});

/** The text a container printed (its CRI log's lines, joined). */
async function output(id: string): Promise<string[]> {
  const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
  expect(st.exit_code).toBe(0);
  return (await logLines(st.log_path)).map(([, , text]) => text);
}

describe("hugepage limits", () => {
  test("zero limits for 2MB and 1GB pages, as every kubelet sends them, run a container on this node", async () => {
    const c = containerConfig("zero-hugepages", image.ref, ["sh", "-c", "echo ran"], {
      linux: { resources: { cpu_period: 100000n, cpu_shares: 2n, hugepage_limits: [{ page_size: "2MB", limit: 0n }, { page_size: "1GB", limit: 0n }] } },
    });
    const { id } = await runContainer(crib.client, podConfig("zero-hugepages"), c);
    expect(await output(id)).toEqual(["ran"]);
    if (!nodeHasHugetlb) expect(crib.logs()).toContain("hugepage limits of 0 left out of container specs");
  });

  test("a non-zero limit on a node without the hugetlb controller is FAILED_PRECONDITION naming the page size", async () => {
    if (nodeHasHugetlb) return; // the limit is applied there, as before
    const pod = podConfig("some-hugepages");
    const { pod_sandbox_id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    const c = containerConfig("some-hugepages", image.ref, ["true"], {
      linux: { resources: { hugepage_limits: [{ page_size: "2MB", limit: 4n << 20n }, { page_size: "1GB", limit: 0n }] } },
    });
    const err = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id, config: c, sandbox_config: pod }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain("page size 2MB");
    expect(err.details).toContain("no hugetlb controller");
    const { containers } = await crib.client.call("RuntimeService", "ListContainers", { filter: { pod_sandbox_id, id: "", state: null, label_selector: {} } });
    expect(containers).toEqual([]);
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id });
  });

  test("UpdateContainerResources with the kubelet's zero hugepage limits succeeds; a non-zero one does not where it cannot apply", async () => {
    const { id } = await runContainer(crib.client, podConfig("update-hugepages"), containerConfig("sleeper", image.ref, ["sleep", "1000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const zero = { cpu_period: 100000n, cpu_shares: 4n, hugepage_limits: [{ page_size: "2MB", limit: 0n }, { page_size: "1GB", limit: 0n }] };
    await crib.client.call("RuntimeService", "UpdateContainerResources", { container_id: id, linux: zero, annotations: {} });
    if (!nodeHasHugetlb) {
      // runc update itself would accept this and apply nothing.
      const err = await criError(crib.client.call("RuntimeService", "UpdateContainerResources", {
        container_id: id, linux: { ...zero, hugepage_limits: [{ page_size: "2MB", limit: 2n << 20n }] }, annotations: {},
      }));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain("page size 2MB");
    }
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
  });
});

describe("hostname", () => {
  const SHOW = ["sh", "-c", "cat /etc/hostname /proc/sys/kernel/hostname; echo \"$HOSTNAME\""];

  test("a pod without a hostname gets the node's, in /etc/hostname, its UTS namespace and HOSTNAME", async () => {
    const pod = podConfig("no-hostname", { hostname: "" });
    const { id, podId } = await runContainer(crib.client, pod, containerConfig("show", image.ref, SHOW));
    expect(await output(id)).toEqual([hostname(), hostname(), hostname()]);
    // Its own UTS namespace all the same: the pod's is not the host's.
    const st = await crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: podId, verbose: true });
    const ns = (JSON.parse(st.info.info!) as { namespaces: Record<string, string> }).namespaces;
    expect(Object.keys(ns)).toContain("uts");
  });

  test("a pod's own hostname still wins", async () => {
    const { id } = await runContainer(crib.client, podConfig("own-hostname", { hostname: "my-pod-host" }), containerConfig("show", image.ref, SHOW));
    expect(await output(id)).toEqual(["my-pod-host", "my-pod-host", "my-pod-host"]);
  });

  test("a pod named with 100 characters (and no hostname) runs a container end to end", async () => {
    const name = `long-${"x".repeat(95)}`;
    expect(name).toHaveLength(100);
    const pod = podConfig(name, { hostname: "" });
    const { id, podId } = await runContainer(crib.client, pod, containerConfig("long", image.ref, ["sh", "-c", "cat /etc/hostname"]));
    expect(await output(id)).toEqual([hostname()]);
    const st = await crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: podId, verbose: false });
    expect(st.status?.metadata?.name).toBe(name);
    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(podId);
  });

  test("a hostname longer than 64 characters is still INVALID_ARGUMENT", async () => {
    const err = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("long-host", { hostname: "h".repeat(65) }) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("hostname");
  });
});

describe("run_as_group without a user", () => {
  test("RunPodSandbox: INVALID_ARGUMENT naming the field, and no pod is left", async () => {
    const pod = podConfig("group-only", { linux: { security_context: { run_as_group: { value: 3000n } } } });
    const err = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: pod }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("run_as_group");
    expect(err.details).toContain("run_as_user");
    const pods = await crib.client.call("RuntimeService", "ListPodSandbox", { filter: null });
    expect(pods.items.map((p) => p.metadata?.name)).not.toContain("group-only");
    // With a user (0 counts: it is set) the same group is fine.
    const ok = podConfig("group-user", { linux: { security_context: { run_as_user: { value: 0n }, run_as_group: { value: 3000n } } } });
    const { pod_sandbox_id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: ok });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id });
  });

  test("CreateContainer: INVALID_ARGUMENT naming the field; with run_as_user or run_as_username it runs", async () => {
    const pod = podConfig("group-container");
    const { pod_sandbox_id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    const groupOnly = containerConfig("group-only", image.ref, ["id"], { linux: { security_context: { run_as_group: { value: 3000n } } } });
    const err = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id, config: groupOnly, sandbox_config: pod }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("run_as_group");
    expect(err.details).toContain("run_as_user or run_as_username");
    for (const [name, user] of [["by-id", { run_as_user: { value: 1000n } }], ["by-name", { run_as_username: "app" }]] as const) {
      const c = containerConfig(name, image.ref, ["id"], { linux: { security_context: { ...user, run_as_group: { value: 3000n } } } });
      const { container_id } = await crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id, config: c, sandbox_config: pod });
      await crib.client.call("RuntimeService", "StartContainer", { container_id });
      expect((await output(container_id))[0]).toMatch(/^uid=1000\(app\) gid=3000/);
    }
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id });
  });
});
