// Crash loop: a seeded run that SIGKILLs the daemon at random moments while a
// pull, RunPodSandbox, CreateContainer, StartContainer, StopContainer,
// RemoveContainer, StopPodSandbox or RemovePodSandbox is in flight, restarts
// it on the same dirs (one kill in ten takes the monitor down too), and
// checks after every restart that
//   - the CRI's lists agree with what is on disk, mounted, known to runc and
//     known to the monitor: nothing leaks (mounts, namespace files, veths,
//     IPs, monitor or pause processes, runc containers, image store orphans);
//   - every RPC the kubelet would repeat succeeds (the same RunPodSandbox and
//     CreateContainer with the same names, Stop, Remove), and then the state
//     settles where the kubelet expects it.
// Default 30 iterations; CRIB_STRESS=1 runs 300. CRIB_SEED replays a run's
// sequence of operations (the kill moments depend on timing too).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CriError } from "../../src/ctl/client.ts";
import { ContainerState, NamespaceMode, PodSandboxState, type ContainerConfig, type Out, type PodSandboxConfig } from "../../src/protocol/types.ts";
import { containerConfig, podConfig } from "../helpers/cri.ts";
import { type CribInstance, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, randomLayer, type PushedImage } from "../helpers/images.ts";
import { monitorList, monitorPid, mountsUnder, pidNamespaceOf, pinnedInode, runcList, runcRoot, taggedProcesses, testBridge } from "../helpers/leaks.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { eventually, Rng, stressFactor, testSeed } from "../helpers/stress.ts";
import { tempDir } from "../helpers/tmp.ts";

const ITERATIONS = 30 * stressFactor();
const HEX64 = /^[0-9a-f]{64}$/;
const CNI_BIN = "/usr/lib/cni";

let reg: StartedRegistry;
let image: PushedImage;
let extra: PushedImage;
let crib: CribInstance | undefined;
const tag = randomBytes(6).toString("hex");
const netDir = tempDir("crib-crash-cni-");
const net = testBridge(netDir, "crash");
/** The kubelet's view of one pod: its config per attempt and the names of its containers. */
interface PodSlot {
  name: string;
  uid: string;
  attempt: number;
  sharedPid: boolean;
  cfg: Out<PodSandboxConfig>;
  ctrAttempts: Map<string, number>;
}

type Op =
  | { kind: "pull" }
  | { kind: "runPod"; slot: PodSlot }
  | { kind: "stopPod" | "removePod"; slot: PodSlot; id: string }
  | { kind: "create"; slot: PodSlot; podId: string; name: string; cfg: Out<ContainerConfig> }
  | { kind: "start" | "stop" | "remove"; slot: PodSlot; id: string; timeout?: number };

function makePodCfg(slot: Omit<PodSlot, "cfg">): Out<PodSandboxConfig> {
  const ns = { network: NamespaceMode.POD, pid: slot.sharedPid ? NamespaceMode.POD : NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };
  return podConfig(slot.name, {
    metadata: { name: slot.name, namespace: "crash", uid: slot.uid, attempt: slot.attempt },
    linux: { cgroup_parent: "", security_context: { namespace_options: ns } },
  });
}

function ctrCfg(slot: PodSlot, name: string): Out<ContainerConfig> {
  const cfg = containerConfig(name, image.ref, ["sleep", "100000"]);
  cfg.metadata = { name, attempt: slot.ctrAttempts.get(name) ?? 0 };
  if (slot.sharedPid) cfg.linux = { security_context: { namespace_options: { network: NamespaceMode.POD, pid: NamespaceMode.POD, ipc: NamespaceMode.POD } } };
  return cfg;
}

async function listAll(c: CribInstance) {
  const pods = (await c.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items;
  const ctrs = (await c.client.call("RuntimeService", "ListContainers", { filter: null })).containers;
  return { pods, ctrs };
}

function podOf(pods: Awaited<ReturnType<typeof listAll>>["pods"], slot: PodSlot) {
  return pods.find((p) => p.metadata?.uid === slot.uid && p.metadata?.attempt === slot.attempt);
}

function hexDirs(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => HEX64.test(n)) : [];
}

/**
 * Nothing on the machine that no listed object owns, and every listed object
 * that should be live is live. `settled`: nothing is in flight any more (the
 * kubelet's repeats ran), so the stronger checks (runc status, veths, IPs)
 * apply too.
 */
async function checkConsistent(c: CribInstance, where: string, settled: boolean): Promise<void> {
  const { pods, ctrs } = await listAll(c);
  const podIds = new Set(pods.map((p) => p.id));
  const ctrIds = new Set(ctrs.map((x) => x.id));
  const ctx = (what: string) => `${where}: ${what}`;

  // Directories: no pod or container dir without a record.
  for (const id of hexDirs(join(c.state, "pods"))) expect(podIds.has(id), ctx(`pod dir ${id} has no record`)).toBe(true);
  for (const d of [join(c.state, "containers"), join(c.root, "containers")]) {
    for (const id of hexDirs(d)) expect(ctrIds.has(id), ctx(`container dir ${d}/${id} has no record`)).toBe(true);
  }

  // Mounts: each one belongs to a listed pod (namespaces, shm) or container (rootfs).
  const mounts = mountsUnder(c.dir);
  for (const m of mounts) {
    const pod = new RegExp(`^${c.state}/pods/([0-9a-f]{64})/(ns/(net|ipc|uts|pid)|shm)$`).exec(m);
    const ctr = new RegExp(`^${c.state}/containers/([0-9a-f]{64})/rootfs$`).exec(m);
    const owned = (pod && podIds.has(pod[1]!)) || (ctr && ctrIds.has(ctr[1]!));
    expect(owned ? "owned" : m, ctx("a mount no listed pod or container owns")).toBe("owned");
  }
  for (const p of pods) {
    if (p.state !== PodSandboxState.SANDBOX_READY) continue;
    for (const k of ["ns/net", "ns/ipc", "ns/uts", "shm"]) expect(mounts, ctx(`ready pod ${p.id} lost ${k}`)).toContain(join(c.state, "pods", p.id, k));
  }
  for (const x of ctrs) {
    if (x.state === ContainerState.CONTAINER_EXITED) continue;
    expect(mounts, ctx(`live container ${x.id} has no rootfs mount`)).toContain(join(c.state, "containers", x.id, "rootfs"));
  }

  // runc and the monitor know no container the CRI does not list; live ones are known to both.
  const runc = runcList(runcRoot(c.state));
  const runcIds = new Map(runc.map((r) => [r.id, r.status]));
  for (const r of runc) expect(ctrIds.has(r.id), ctx(`runc container ${r.id} (${r.status}) has no record`)).toBe(true);
  const mon = await monitorList(c.state);
  const monIds = new Map(mon.map((m) => [m.id, m.status]));
  for (const m of mon) expect(ctrIds.has(m.id), ctx(`the monitor's container ${m.id} has no record`)).toBe(true);
  for (const x of ctrs) {
    if (x.state === ContainerState.CONTAINER_EXITED) continue;
    expect(monIds.has(x.id), ctx(`live container ${x.id} unknown to the monitor`)).toBe(true);
    expect(runcIds.has(x.id), ctx(`live container ${x.id} unknown to runc`)).toBe(true);
    if (settled) {
      const want = x.state === ContainerState.CONTAINER_RUNNING ? "running" : "created";
      expect(`${x.id} ${runcIds.get(x.id)}`, ctx("runc's status")).toBe(`${x.id} ${want}`);
    }
  }

  // Processes: one daemon, at most one monitor, and a pause process only for listed pods.
  const procs = taggedProcesses(tag);
  const daemons = procs.filter((p) => p.argv[1] === "serve");
  expect(daemons.map((p) => p.pid), ctx("daemons")).toEqual([c.proc.pid]);
  expect(procs.filter((p) => p.argv[1] === "monitor").length, ctx("monitors")).toBeLessThanOrEqual(1);
  const podPidNs = new Set(pods.map((p) => pinnedInode(join(c.state, "pods", p.id, "ns", "pid"))).filter((n) => n !== undefined));
  for (const p of procs.filter((x) => x.argv[1] === "pause")) {
    expect(podPidNs.has(pidNamespaceOf(p.pid) ?? -1), ctx(`pause process ${p.pid} belongs to no listed pod`)).toBe(true);
  }

  // The image store: nothing unreferenced survives the start-up cleanup, nothing half unpacked.
  const usage = await c.client.call("Crib", "StoreUsage", {});
  expect(usage.orphan_blobs, ctx("orphan blobs")).toEqual([]);
  expect(usage.orphan_layers, ctx("orphan layers")).toEqual([]);

  if (settled) {
    // Networks: one veth and one IP per ready pod, and CNI cache entries only for listed pods.
    const ready = pods.filter((p) => p.state === PodSandboxState.SANDBOX_READY).length;
    await eventually(() => {
      expect(net.ports().length, ctx("veths on the bridge")).toBe(ready);
      expect(net.allocated().length, ctx(`IPs allocated (${net.allocated().join(", ")})`)).toBe(ready);
      for (const f of existsSync(join(c.root, "cni", "cache")) ? readdirSync(join(c.root, "cni", "cache")) : []) {
        expect(podIds.has(f.replace(/\.json$/, "")), ctx(`CNI cache entry ${f} for no listed pod`)).toBe(true);
      }
    }, 20_000);
  }
}

/** Start an op; not awaited here (the daemon may die under it). */
function begin(c: CribInstance, op: Op): Promise<unknown> {
  const rt = (method: string, req: object) => c.client.call("RuntimeService", method as "Version", req as { version: string }, { timeoutMs: 60_000 });
  switch (op.kind) {
    case "pull":
      return c.client.call("ImageService", "RemoveImage", { image: { image: extra.ref } }).then(() =>
        c.client.call("ImageService", "PullImage", { image: { image: extra.ref }, auth: null }, { timeoutMs: 60_000 }),
      );
    case "runPod":
      return rt("RunPodSandbox", { config: op.slot.cfg });
    case "stopPod":
      return rt("StopPodSandbox", { pod_sandbox_id: op.id });
    case "removePod":
      return rt("RemovePodSandbox", { pod_sandbox_id: op.id });
    case "create":
      return rt("CreateContainer", { pod_sandbox_id: op.podId, config: op.cfg, sandbox_config: op.slot.cfg });
    case "start":
      return rt("StartContainer", { container_id: op.id });
    case "stop":
      return rt("StopContainer", { container_id: op.id, timeout: op.timeout ?? 0 });
    case "remove":
      return rt("RemoveContainer", { container_id: op.id });
  }
}

/**
 * What the kubelet does after the runtime came back: repeat the request
 * (creates with the same name and attempt; stops and removes as they were),
 * then check the state is where it should be. A create whose answer was lost
 * after the daemon had handed it out answers ALREADY_EXISTS; the kubelet's
 * next sync lists the pod or container and takes it, and so do we.
 */
async function repeat(c: CribInstance, op: Op): Promise<void> {
  const { pods, ctrs } = await listAll(c);
  const rt = c.client;
  switch (op.kind) {
    case "pull": {
      const r = await rt.call("ImageService", "PullImage", { image: { image: extra.ref }, auth: null }, { timeoutMs: 60_000 });
      expect(r.image_ref).toBe(extra.configDigest);
      return;
    }
    case "runPod": {
      try {
        const { pod_sandbox_id: id } = await rt.call("RuntimeService", "RunPodSandbox", { config: op.slot.cfg }, { timeoutMs: 60_000 });
        const st = await rt.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: id, verbose: false });
        expect(st.status?.state).toBe(PodSandboxState.SANDBOX_READY);
      } catch (e) {
        if (!(e instanceof CriError) || e.code !== status.ALREADY_EXISTS) throw e;
        expect(podOf(pods, op.slot)?.state, `RunPodSandbox answered ${e.details} but no such pod is listed`).toBe(PodSandboxState.SANDBOX_READY);
      }
      return;
    }
    case "create": {
      const pod = podOf(pods, op.slot);
      if (!pod || pod.state !== PodSandboxState.SANDBOX_READY) throw new Error(`the pod of a create is gone: ${JSON.stringify(pod)}`);
      try {
        await rt.call("RuntimeService", "CreateContainer", { pod_sandbox_id: op.podId, config: op.cfg, sandbox_config: op.slot.cfg }, { timeoutMs: 60_000 });
      } catch (e) {
        if (!(e instanceof CriError) || e.code !== status.ALREADY_EXISTS) throw e;
        const listed = ctrs.find((x) => x.pod_sandbox_id === op.podId && x.metadata?.name === op.name && x.metadata?.attempt === op.cfg.metadata?.attempt);
        expect(listed?.state, `CreateContainer answered ${e.details} but no such container is listed`).toBe(ContainerState.CONTAINER_CREATED);
      }
      return;
    }
    case "start": {
      // Not repeated as such: the kubelet starts it again only if it is still created.
      const st = ctrs.find((x) => x.id === op.id);
      if (st?.state === ContainerState.CONTAINER_CREATED) await rt.call("RuntimeService", "StartContainer", { container_id: op.id });
      const now = (await rt.call("RuntimeService", "ContainerStatus", { container_id: op.id, verbose: false })).status;
      expect(now?.state).toBe(ContainerState.CONTAINER_RUNNING);
      return;
    }
    case "stop": {
      await rt.call("RuntimeService", "StopContainer", { container_id: op.id, timeout: 0 }, { timeoutMs: 60_000 });
      const now = (await rt.call("RuntimeService", "ContainerStatus", { container_id: op.id, verbose: false })).status;
      expect(now?.state).toBe(ContainerState.CONTAINER_EXITED);
      return;
    }
    case "remove": {
      await rt.call("RuntimeService", "RemoveContainer", { container_id: op.id }, { timeoutMs: 60_000 });
      expect((await listAll(c)).ctrs.map((x) => x.id)).not.toContain(op.id);
      return;
    }
    case "stopPod": {
      await rt.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: op.id }, { timeoutMs: 60_000 });
      const after = await listAll(c);
      expect(after.pods.find((p) => p.id === op.id)?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
      for (const x of after.ctrs.filter((x) => x.pod_sandbox_id === op.id)) expect(x.state).toBe(ContainerState.CONTAINER_EXITED);
      return;
    }
    case "removePod": {
      await rt.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: op.id }, { timeoutMs: 60_000 });
      const after = await listAll(c);
      expect(after.pods.map((p) => p.id)).not.toContain(op.id);
      expect(after.ctrs.filter((x) => x.pod_sandbox_id === op.id)).toEqual([]);
      return;
    }
  }
}

/** Pick the next operation from the daemon's real state, as a kubelet driving these pods would. */
async function chooseOp(c: CribInstance, rng: Rng, slots: PodSlot[]): Promise<Op> {
  if (rng.chance(0.12)) return { kind: "pull" };
  const { pods, ctrs } = await listAll(c);
  const slot = rng.pick(slots);
  const pod = podOf(pods, slot);
  if (!pod) return { kind: "runPod", slot };
  if (pod.state === PodSandboxState.SANDBOX_NOTREADY) return { kind: "removePod", slot, id: pod.id };
  if (rng.chance(0.08)) return { kind: "stopPod", slot, id: pod.id };
  if (rng.chance(0.08)) return { kind: "removePod", slot, id: pod.id };
  const name = rng.pick(["app", "sidecar"]);
  const attempt = slot.ctrAttempts.get(name) ?? 0;
  const ctr = ctrs.find((x) => x.pod_sandbox_id === pod.id && x.metadata?.name === name && x.metadata?.attempt === attempt);
  if (!ctr) return { kind: "create", slot, podId: pod.id, name, cfg: ctrCfg(slot, name) };
  switch (ctr.state) {
    case ContainerState.CONTAINER_CREATED:
      return { kind: "start", slot, id: ctr.id };
    case ContainerState.CONTAINER_RUNNING:
      return { kind: "stop", slot, id: ctr.id, timeout: rng.chance(0.2) ? 1 : 0 };
    default:
      slot.ctrAttempts.set(name, attempt + 1); // the next create of this name is a new attempt
      return { kind: "remove", slot, id: ctr.id };
  }
}

function describeOp(op: Op): string {
  const s = "slot" in op ? ` ${op.slot.name}#${op.slot.attempt}` : "";
  const id = "id" in op ? ` ${op.id.slice(0, 12)}` : "";
  return `${op.kind}${s}${"name" in op ? `/${op.name}` : ""}${id}`;
}

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "crash/busybox:1", { layers: [busyboxLayer()] });
  // Big enough that a pull is still running when the kill lands.
  extra = await pushImage(reg, "crash/extra:1", { layers: [busyboxLayer(), randomLayer(6 * 1024 * 1024, 21), randomLayer(2 * 1024 * 1024, 22)] });
});

afterAll(async () => {
  if (crib) {
    if (crib.proc.exitCode === null) {
      for (const p of (await listAll(crib).catch(() => ({ pods: [] }))).pods) {
        await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
      }
      await crib.stop();
    }
  }
  for (const p of taggedProcesses(tag)) {
    try {
      process.kill(p.pid, p.argv[1] === "monitor" ? "SIGTERM" : "SIGKILL");
    } catch {
      // gone
    }
  }
  net.remove();
  for (const m of crib ? mountsUnder(crib.dir).reverse() : []) Bun.spawnSync(["umount", "-l", m]);
  crib?.cleanup();
  rmSync(netDir, { recursive: true, force: true });
  await reg?.stop();
});

describe("crash loop", () => {
  test(`${ITERATIONS} kills of the daemon in the middle of pulls and pod and container operations`, async () => {
    const rng = new Rng(testSeed("crash loop"));
    const t = tempConfig({ cni: { confDir: net.confDir, binDirs: [CNI_BIN] }, log: { level: "info" } });
    const env = { CRIB_TEST_TAG: tag };
    crib = await startCrib({}, t, undefined, env);
    await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
    await crib.client.call("ImageService", "PullImage", { image: { image: extra.ref }, auth: null }, { timeoutMs: 60_000 });
    const slots: PodSlot[] = ["alpha", "beta", "gamma"].map((name, i) => {
      const s = { name, uid: `uid-crash-${name}-${tag}`, attempt: 0, sharedPid: i === 0, ctrAttempts: new Map<string, number>() };
      return { ...s, cfg: makePodCfg(s) };
    });
    const kinds = new Map<string, number>();
    let interrupted = 0;

    for (let i = 0; i < ITERATIONS; i++) {
      const op = await chooseOp(crib, rng, slots);
      const delay = rng.int(51);
      let where = `iteration ${i} (${describeOp(op)}, kill after ${delay} ms)`;
      kinds.set(op.kind, (kinds.get(op.kind) ?? 0) + 1);
      const inFlight = begin(crib, op).then(
        () => "done",
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      await Bun.sleep(delay);
      await crib.kill();
      // Now and then the monitor goes down with the daemon (a node-wide OOM kill, a crashed upgrade).
      const alsoMonitor = rng.chance(0.1);
      if (alsoMonitor && monitorPid(crib.state) > 0) {
        process.kill(monitorPid(crib.state), "SIGKILL");
        where += " with the monitor";
      }
      const outcome = await inFlight;
      if (outcome !== "done") interrupted++;
      crib = await startCrib({}, t, undefined, env);
      try {
        await checkConsistent(crib, `${where}, after the restart`, false);
        await repeat(crib, op);
        await checkConsistent(crib, `${where}, after the kubelet's repeat`, true);
      } catch (e) {
        console.log(`${where}: the interrupted call ended with: ${outcome}\n--- daemon log tail ---\n${crib.logs().split("\n").slice(-30).join("\n")}`);
        throw e;
      }
      // A removed pod comes back as the next attempt, as the kubelet does.
      if (op.kind === "removePod") {
        op.slot.attempt++;
        op.slot.cfg = makePodCfg(op.slot);
        op.slot.ctrAttempts.clear();
      }
    }
    console.log(`crash loop: ${ITERATIONS} kills (${interrupted} cut a call short): ${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}`);

    // Everything removed leaves nothing behind.
    for (const p of (await listAll(crib)).pods) await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }, { timeoutMs: 60_000 });
    await checkConsistent(crib, "after removing every pod", true);
    expect(mountsUnder(crib.dir)).toEqual([]);
    expect(runcList(runcRoot(crib.state))).toEqual([]);
    expect(await monitorList(crib.state)).toEqual([]);
    expect(taggedProcesses(tag).filter((p) => p.argv[1] === "pause")).toEqual([]);
    expect(net.allocated()).toEqual([]);
  }, 600_000 * stressFactor());
});
