// Recovery from what kills a node's runtime state, on the compiled daemon:
//   - a reboot: the state dir (/run/crib's analogue) is gone and the boot id is
//     new (CRIB_BOOT_ID_PATH, a test-only override, stands in for the kernel's);
//   - the loss of the monitor: containers that exited while no monitor watched
//     them are reported with a reason and can still be stopped and removed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerState, NamespaceMode, PodSandboxState } from "../../src/protocol/types.ts";
import { containerConfig, podConfig, runContainer, statusOf, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { monitorList, monitorPid, mountsUnder, runcList, runcRoot, taggedProcesses, testBridge } from "../helpers/leaks.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { eventually } from "../helpers/stress.ts";
import { tempDir } from "../helpers/tmp.ts";

const CNI_BIN = "/usr/lib/cni";
const tag = randomBytes(6).toString("hex");
let reg: StartedRegistry;
let image: PushedImage;
const started: CribInstance[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "recovery/busybox:1", { layers: [busyboxLayer()] });
});

afterAll(async () => {
  for (const c of started) {
    if (c.proc.exitCode === null) {
      for (const p of (await c.client.call("RuntimeService", "ListPodSandbox", { filter: null }).catch(() => ({ items: [] }))).items) {
        await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
      }
      await c.stop();
    }
  }
  for (const p of taggedProcesses(tag)) {
    try {
      process.kill(p.pid, p.argv[1] === "monitor" ? "SIGTERM" : "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const c of started) {
    for (const m of mountsUnder(c.dir).reverse()) Bun.spawnSync(["umount", "-l", m]);
    c.cleanup();
  }
  await reg?.stop();
});

/** Whether a process runs (a zombie waiting for a slow PID 1 to reap it does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function start(t: ReturnType<typeof tempConfig>, env: Record<string, string> = {}): Promise<CribInstance> {
  const c = await startCrib({}, t, undefined, { CRIB_TEST_TAG: tag, ...env });
  started.push(c);
  return c;
}

/** What a reboot does to a node: every process gone, every mount gone, /run empty. */
async function reboot(c: CribInstance, bootIdFile: string): Promise<void> {
  await c.kill();
  const mon = monitorPid(c.state);
  if (mon > 0) process.kill(mon, "SIGKILL");
  // runc delete --force kills the containers and removes their cgroups (which a reboot also clears).
  for (const r of runcList(runcRoot(c.state))) Bun.spawnSync(["runc", "--root", runcRoot(c.state), "delete", "--force", r.id]);
  for (const p of taggedProcesses(tag)) if (p.argv[1] === "pause") process.kill(p.pid, "SIGKILL");
  for (const m of mountsUnder(c.dir).reverse()) expect(Bun.spawnSync(["umount", "-l", m]).exitCode).toBe(0);
  rmSync(c.state, { recursive: true, force: true });
  writeFileSync(bootIdFile, `${crypto.randomUUID()}\n`);
}

describe("a reboot", () => {
  test("containers are reported exited and pods not ready; removing them leaves nothing; new pods run", async () => {
    const dir = tempDir("crib-reboot-");
    const net = testBridge(dir, "reboot");
    const bootIdFile = join(dir, "boot_id");
    writeFileSync(bootIdFile, `${crypto.randomUUID()}\n`);
    const env = { CRIB_BOOT_ID_PATH: bootIdFile };
    const t = tempConfig({ cni: { confDir: net.confDir, binDirs: [CNI_BIN] } });
    try {
      let c = await start(t, env);
      await c.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
      const podCfg = podConfig("rebooted");
      const { podId, id: running } = await runContainer(c.client, podCfg, containerConfig("runs", image.ref, ["sleep", "100000"]));
      const { container_id: created } = await c.client.call("RuntimeService", "CreateContainer", {
        pod_sandbox_id: podId, sandbox_config: podCfg, config: containerConfig("created", image.ref, ["sleep", "100000"]),
      });
      const { container_id: done } = await c.client.call("RuntimeService", "CreateContainer", {
        pod_sandbox_id: podId, sandbox_config: podCfg, config: containerConfig("done", image.ref, ["sh", "-c", "exit 0"]),
      });
      await c.client.call("RuntimeService", "StartContainer", { container_id: done });
      await waitStatus(c.client, done, (s) => s.state === ContainerState.CONTAINER_EXITED);
      await waitStatus(c.client, running, (s) => s.state === ContainerState.CONTAINER_RUNNING);
      const sharedPid = podConfig("rebooted-shared", { linux: { security_context: { namespace_options: { network: 0, pid: NamespaceMode.POD, ipc: 0 } } } });
      const { pod_sandbox_id: sharedPodId } = await c.client.call("RuntimeService", "RunPodSandbox", { config: sharedPid });
      expect(net.allocated()).toHaveLength(2);

      await reboot(c, bootIdFile);
      c = await start(t, env);

      const pods = (await c.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items;
      expect(pods.map((p) => [p.id, p.state]).sort()).toEqual([[podId, PodSandboxState.SANDBOX_NOTREADY], [sharedPodId, PodSandboxState.SANDBOX_NOTREADY]].sort());
      const st = await statusOf(c.client, running);
      expect(st?.state).toBe(ContainerState.CONTAINER_EXITED);
      expect(st?.reason).toBe("Unknown");
      expect(st?.message).toContain("rebooted");
      expect(st?.finished_at).toBeGreaterThanOrEqual(st!.started_at);
      expect((await statusOf(c.client, created))?.state).toBe(ContainerState.CONTAINER_EXITED);
      const doneSt = await statusOf(c.client, done);
      expect([doneSt?.state, doneSt?.exit_code, doneSt?.reason]).toEqual([ContainerState.CONTAINER_EXITED, 0, "Completed"]);
      const podSt = await c.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: podId, verbose: true });
      expect(podSt.status?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);

      // The kubelet stops and removes what it finds, then starts the pods again as new attempts.
      for (const id of [running, created, done]) {
        await c.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0 });
        await c.client.call("RuntimeService", "RemoveContainer", { container_id: id });
      }
      for (const id of [podId, sharedPodId]) {
        await c.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: id });
        await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
      }
      expect((await c.client.call("RuntimeService", "ListContainers", { filter: null })).containers).toEqual([]);
      expect(readdirSync(join(c.root, "containers"))).toEqual([]);
      expect(net.allocated()).toEqual([]);
      const cache = join(c.root, "cni", "cache");
      expect(existsSync(cache) ? readdirSync(cache) : []).toEqual([]);

      const again = podConfig("rebooted", { metadata: { ...podCfg.metadata!, attempt: 1 } });
      const { podId: newPod, id: newCtr } = await runContainer(c.client, again, containerConfig("runs", image.ref, ["sleep", "100000"]));
      await waitStatus(c.client, newCtr, (s) => s.state === ContainerState.CONTAINER_RUNNING);
      await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: newPod });
      expect(mountsUnder(c.dir)).toEqual([]);
      expect(runcList(runcRoot(c.state))).toEqual([]);
      expect(net.allocated()).toEqual([]);
      expect(net.ports()).toEqual([]);
    } finally {
      net.remove();
    }
  });
});

describe("the loss of the monitor", () => {
  let c: CribInstance;
  beforeAll(async () => {
    c = await start(tempConfig());
    await c.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
  });

  async function removeAndCheck(podId: string, ids: string[]): Promise<void> {
    for (const id of ids) {
      await c.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0 });
      await c.client.call("RuntimeService", "RemoveContainer", { container_id: id });
    }
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    for (const id of ids) {
      expect(runcList(runcRoot(c.state)).map((r) => r.id)).not.toContain(id);
      expect((await monitorList(c.state)).map((m) => m.id)).not.toContain(id);
      expect(mountsUnder(c.dir).filter((m) => m.includes(id))).toEqual([]);
    }
  }

  const initPid = async (id: string) => (await monitorList(c.state)).find((m) => m.id === id)!.pid;

  test("a container that exits while neither daemon nor monitor runs: reported Unknown with why", async () => {
    const { podId, id } = await runContainer(c.client, podConfig(), containerConfig("orphaned", image.ref, ["sleep", "100000"]));
    await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const pid = await initPid(id);
    await c.kill();
    process.kill(monitorPid(c.state), "SIGKILL");
    process.kill(pid, "SIGKILL");
    c = await start(c);
    const st = await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(st.reason).toBe("Unknown");
    expect(st.exit_code).toBe(255);
    expect(st.message).toContain("no monitor was watching");
    await removeAndCheck(podId, [id]);
  });

  test("a container that dies in the moment the monitor is down: the daemon's new monitor reports it", async () => {
    const { podId, id } = await runContainer(c.client, podConfig(), containerConfig("gap", image.ref, ["sleep", "100000"]));
    const { podId: survivorPod, id: survivor } = await runContainer(c.client, podConfig(), containerConfig("survivor", image.ref, ["sleep", "100000"]));
    await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    await waitStatus(c.client, survivor, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const pid = await initPid(id);
    const old = monitorPid(c.state);
    process.kill(old, "SIGKILL");
    process.kill(pid, "SIGKILL");
    const st = await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(monitorPid(c.state)).not.toBe(old);
    expect(st.reason).toBe("Unknown");
    expect(st.message).toMatch(/monitor/);
    // The other container was not touched; a new monitor watches it from outside its tree now.
    expect((await statusOf(c.client, survivor))?.state).toBe(ContainerState.CONTAINER_RUNNING);
    await removeAndCheck(podId, [id]);

    // When it exits later, its exit is seen (its status cannot be: it is not the new monitor's child).
    process.kill(await initPid(survivor), "SIGKILL");
    const later = await waitStatus(c.client, survivor, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(later.reason).toBe("Unknown");
    expect(later.message).toContain("exit status is unknown");
    await removeAndCheck(survivorPod, [survivor]);
  });

  test("a container stopped and removed while the monitor is being replaced", async () => {
    const { podId, id } = await runContainer(c.client, podConfig(), containerConfig("racing", image.ref, ["sleep", "100000"]));
    await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const pid = await initPid(id);
    process.kill(monitorPid(c.state), "SIGKILL");
    // The kubelet does not wait for the monitor: the calls reach the replacement.
    await c.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0 });
    expect((await statusOf(c.client, id))?.state).toBe(ContainerState.CONTAINER_EXITED);
    expect(running(pid)).toBe(false);
    await c.client.call("RuntimeService", "RemoveContainer", { container_id: id });
    await removeAndCheck(podId, []);
    expect(runcList(runcRoot(c.state)).map((r) => r.id)).not.toContain(id);
  });
});
