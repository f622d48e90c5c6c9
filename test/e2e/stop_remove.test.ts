// What the CRI v1 API leaves optional or idempotent, on the compiled daemon: an empty
// log_path (no log file, output still drained), Stop*/Remove* of objects that are
// gone or already stopped, and StopPodSandbox releasing the pod's namespaces and
// /dev/shm at once (the CNI side is in cni.test.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerState, PodSandboxState } from "../../src/protocol/types.ts";
import { containerConfig, criError, podConfig, runContainer, statusOf, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, requireBinary, shutdownCrib, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { spdyCommand } from "../helpers/streaming_client.ts";
import type { TarEntry } from "../helpers/tar.ts";

let reg: StartedRegistry;
let crib: CribInstance;
let image: PushedImage;

const EXTRA_APPLETS = ["sleep", "seq"];
const UNKNOWN = "0123456789abcdef".repeat(4);

beforeAll(async () => {
  reg = await startRegistry();
  const base = busyboxLayer().filter((e) => !EXTRA_APPLETS.some((a) => e.path === `bin/${a}`));
  const applets: TarEntry[] = EXTRA_APPLETS.map((a) => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" }));
  image = await pushImage(reg, "stop/busybox:1", { layers: [[...base, ...applets]] });
  crib = await startCrib();
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
}, 120_000);

afterAll(async () => {
  await shutdownCrib(crib);
  await reg?.stop();
});

/** Host processes running `sleep <tag>`. */
function sleepers(tag: string): number {
  let n = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8") === `sleep\0${tag}\0`) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

function mountsOf(podId: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(podId));
}

async function runCtl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([requireBinary(), "ctl", "-r", `unix://${crib.socket}`, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

describe("an empty log_path means no log file", () => {
  test("the container runs, more output than a pipe holds is drained, status and ReopenContainerLog agree, ctl logs says why", async () => {
    const pod = podConfig("nolog");
    // ~6.9 MB of output: far more than a pipe buffer, so an undrained pipe would block the container forever.
    const { podId, id } = await runContainer(crib.client, pod, containerConfig("chatty", image.ref, ["sh", "-c", "seq 1 1000000; : > /past-output; sleep 100000"], { log_path: "" }));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const st = await statusOf(crib.client, id);
    expect(st?.log_path).toBe("");
    // The container gets past its output (an undrained pipe would block it in seq for good).
    const exec = await crib.client.call("RuntimeService", "ExecSync", { container_id: id, cmd: ["sh", "-c", "until [ -e /past-output ]; do sleep 0.1; done; echo past-output"], timeout: 0n });
    expect(new TextDecoder().decode(exec.stdout)).toBe("past-output\n");
    await crib.client.call("RuntimeService", "ReopenContainerLog", { container_id: id });
    expect(readdirSync(pod.log_directory!)).toEqual([]);
    const logs = await runCtl(["logs", id]);
    expect(logs.code).not.toBe(0);
    expect(logs.stderr).toContain(`container ${id} has no log file`);
    expect(logs.stderr).toContain("empty log_path");
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });

  test("a pod with no log_directory: its containers run without a log file", async () => {
    const pod = podConfig("nologdir", { log_directory: "" });
    const { podId, id } = await runContainer(crib.client, pod, containerConfig("echo", image.ref, ["sh", "-c", "echo hi; exit 3"]));
    const exit = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(exit.exit_code).toBe(3);
    expect(exit.log_path).toBe("");
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });

  test("attach still sees the output of a container without a log file", async () => {
    const { podId, id } = await runContainer(crib.client, podConfig("nolog-attach"), containerConfig("echoer", image.ref, ["sh", "-c", "while read l; do echo got:$l; done"], { log_path: "", stdin: true }));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const { url } = await crib.client.call("RuntimeService", "Attach", { container_id: id, stdin: true, stdout: true, stderr: true, tty: false, audit_request_id: "" });
    const s = await spdyCommand(url, { stdin: true, stdout: true, stderr: true });
    s.write("one\n");
    await s.waitStdout("got:one\n");
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    expect((await s.done()).status?.status).toBe("Success");
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });
});

describe("Stop* and Remove* succeed when the object is gone or already stopped", () => {
  test("unknown ids: every Stop*/Remove* succeeds; the status calls keep NOT_FOUND", async () => {
    await crib.client.call("RuntimeService", "StopContainer", { container_id: UNKNOWN, timeout: 0n });
    await crib.client.call("RuntimeService", "StopContainer", { container_id: UNKNOWN, timeout: 10n });
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: UNKNOWN });
    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: UNKNOWN });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: UNKNOWN });
    expect((await criError(crib.client.call("RuntimeService", "ContainerStatus", { container_id: UNKNOWN, verbose: false }))).code).toBe(status.NOT_FOUND);
    expect((await criError(crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: UNKNOWN, verbose: false }))).code).toBe(status.NOT_FOUND);
    // RemoveImage of an image never pulled, by name and by id, succeeds; ImageStatus answers with no image.
    for (const ref of ["127.0.0.1:1/never/pulled:1", `sha256:${UNKNOWN}`]) {
      await crib.client.call("ImageService", "RemoveImage", { image: { image: ref } });
      expect((await crib.client.call("ImageService", "ImageStatus", { image: { image: ref }, verbose: false })).image).toBeNull();
    }
    // An empty id is still a malformed request, not an absent object.
    expect((await criError(crib.client.call("RuntimeService", "StopContainer", { container_id: "", timeout: 0n }))).code).toBe(status.INVALID_ARGUMENT);
  });

  test("a container: stopped twice (first with a negative timeout), removed twice, then stopped again", async () => {
    const { podId, id } = await runContainer(crib.client, podConfig("twice"), containerConfig("sleep", image.ref, ["sleep", "100000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    // A negative timeout kills at once, as 0 does (containerd), instead of refusing the stop.
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: -1n });
    expect((await statusOf(crib.client, id))?.state).toBe(ContainerState.CONTAINER_EXITED);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: id });
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: id });
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 5n });
    expect((await criError(crib.client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: false }))).code).toBe(status.NOT_FOUND);
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });

  // The monitor signals a container's init with kill(2) where that equals `runc kill`
  // (its own PID namespace: SIGKILL of PID 1 ends the namespace) and through runc
  // otherwise (a pod-shared PID namespace: runc kill --all). Either way nothing is left.
  for (const shared of [false, true]) {
    test(`StopContainer ends every process of the container (${shared ? "pod-shared PID namespace, through runc" : "own PID namespace, kill(2)"})`, async () => {
      const tag = shared ? "100102" : "100101";
      const pod = podConfig(shared ? "killshared" : "killown", shared ? { linux: { cgroup_parent: "", security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } } } : {});
      const { podId, id } = await runContainer(crib.client, pod, containerConfig("tree", image.ref, ["sh", "-c", `sleep ${tag} & sleep ${tag} & exec sleep ${tag}`]));
      await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
      for (let i = 0; i < 100 && sleepers(tag) < 3; i++) await Bun.sleep(20);
      expect(sleepers(tag)).toBe(3);
      await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
      expect((await statusOf(crib.client, id))?.state).toBe(ContainerState.CONTAINER_EXITED);
      for (let i = 0; i < 100 && sleepers(tag) > 0; i++) await Bun.sleep(20);
      expect(sleepers(tag)).toBe(0);
      await crib.client.call("RuntimeService", "RemoveContainer", { container_id: id });
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    });
  }

  test("a pod: removed, then stopped and removed again; its containers' Stop/Remove succeed too", async () => {
    const { podId, id } = await runContainer(crib.client, podConfig("gone"), containerConfig("sleep", image.ref, ["sleep", "100000"]));
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: id });
  });
});

describe("StopPodSandbox releases what the pod holds", () => {
  test("namespaces and /dev/shm unmounted at stop; the pod answers NOTREADY with no IP until removed", async () => {
    const pod = podConfig("release", { linux: { cgroup_parent: "", security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } } });
    const { podId, id } = await runContainer(crib.client, pod, containerConfig("sleep", image.ref, ["sleep", "100000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const nsDir = join(crib.state, "pods", podId, "ns");
    const before = mountsOf(podId);
    for (const what of ["/ns/net", "/ns/ipc", "/ns/uts", "/ns/pid", "/shm"]) expect(before.some((l) => l.includes(`${podId}${what} `))).toBe(true);

    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: podId });
    expect(mountsOf(podId).filter((l) => !l.includes("/containers/"))).toEqual([]);
    expect(existsSync(nsDir) ? readdirSync(nsDir) : []).toEqual([]);
    expect((await statusOf(crib.client, id))?.state).toBe(ContainerState.CONTAINER_EXITED);
    const st = await crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: podId, verbose: false });
    expect(st.status?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    expect(st.status?.network?.ip ?? "").toBe("");
    const listed = await crib.client.call("RuntimeService", "ListPodSandbox", { filter: { id: podId, state: null, label_selector: {} } });
    expect(listed.items.map((p) => p.state)).toEqual([PodSandboxState.SANDBOX_NOTREADY]);
    // A stopped pod takes no new container.
    const refused = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig("late", image.ref, ["true"]), sandbox_config: pod }));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);

    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    expect(mountsOf(podId)).toEqual([]);
    expect(existsSync(join(crib.state, "pods", podId))).toBe(false);
  });
});
