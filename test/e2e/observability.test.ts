// Stats, metrics and container events on the compiled daemon, with real
// containers under runc: figures that move the right way under load, events of a
// pod's life for several subscribers (and a stalled one dropped), /metrics over
// HTTP, the cAdvisor metrics the kubelet reads, and crib ctl's stats and events.
//
// Pods get a bridge network through real CNI plugins (as test/e2e/cni.test.ts),
// in a temp confDir with its own bridge and subnet, so the pod's eth0 counters
// can be checked: the pod network figures leave loopback out, as cAdvisor does.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CriError } from "../../src/ctl/client.ts";
import { grpcServiceDefinition } from "../helpers/protobuf_reference.ts";
import { ContainerEventType, ContainerState, NamespaceMode, PodSandboxState, type ContainerEventResponse, type Out, type PodSandboxConfig } from "../../src/protocol/types.ts";
import { containerConfig, criError, podConfig, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, CRIB_BIN, startCrib, shutdownCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { parseExposition, sampleValue } from "../helpers/prometheus_text.ts";
import { freePort, startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import type { TarEntry } from "../helpers/tar.ts";
import { tempDir } from "../helpers/tmp.ts";

const EXTRA_APPLETS = ["dd", "ping", "rm"];
const MiB = 1024n * 1024n;

let reg: StartedRegistry;
let image: PushedImage;
let crib: CribInstance;
let metricsUrl: string;
const net = { dir: "", bridge: `cni-obs-${randomBytes(2).toString("hex")}`, gateway: "" };

function sh(cmd: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

beforeAll(async () => {
  reg = await startRegistry();
  const base = busyboxLayer().filter((e) => !EXTRA_APPLETS.some((a) => e.path === `bin/${a}`));
  const applets: TarEntry[] = EXTRA_APPLETS.map((a) => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" }));
  image = await pushImage(reg, "obs/busybox:1", { layers: [[...base, ...applets]] });

  net.dir = tempDir("crib-obs-cni-");
  const a = 200 + (randomBytes(1)[0]! % 50);
  const b = randomBytes(1)[0]!;
  net.gateway = `10.${a}.${b}.1`;
  mkdirSync(join(net.dir, "net.d"));
  writeFileSync(join(net.dir, "net.d", "10-obs.conflist"), JSON.stringify({
    cniVersion: "1.0.0",
    name: `obs-${net.bridge}`,
    plugins: [{ type: "bridge", bridge: net.bridge, isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: `10.${a}.${b}.0/24` }]], dataDir: join(net.dir, "ipam") } }],
  }));

  const port = await freePort();
  crib = await startCrib({ metrics: { address: `127.0.0.1:${port}` }, cni: { confDir: join(net.dir, "net.d"), binDirs: ["/usr/lib/cni"] } });
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
});

afterAll(async () => {
  await shutdownCrib(crib);
  if (net.dir) {
    sh(["ip", "link", "del", net.bridge]);
    rmSync(net.dir, { recursive: true, force: true });
  }
  await reg?.stop();
});

async function runPod(cfg: Out<PodSandboxConfig>): Promise<string> {
  return (await crib.client.call("RuntimeService", "RunPodSandbox", { config: cfg })).pod_sandbox_id;
}

async function startIn(podId: string, pod: Out<PodSandboxConfig>, c: ReturnType<typeof containerConfig>): Promise<string> {
  const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: c, sandbox_config: pod });
  await crib.client.call("RuntimeService", "StartContainer", { container_id: id });
  await waitStatus(crib.client, id, (s) => s.state !== ContainerState.CONTAINER_CREATED);
  return id;
}

async function containerStats(id: string) {
  return (await crib.client.call("RuntimeService", "ContainerStats", { container_id: id })).stats!;
}

async function exec(id: string, cmd: string[]): Promise<void> {
  const r = await crib.client.call("RuntimeService", "ExecSync", { container_id: id, cmd, timeout: 60n });
  if (r.exit_code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exit_code}: ${r.stderr.toString()}`);
}

/** Poll until `get` gives a value `ok` accepts (the writable layer is cached for a few seconds). */
async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await Bun.sleep(100);
  }
}

async function scrape() {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("version=0.0.4");
  return parseExposition(await res.text());
}

describe("container and pod stats", () => {
  let busyPod: Out<PodSandboxConfig>;
  let busyPodId: string;
  let busyId: string;

  beforeAll(async () => {
    busyPod = podConfig("busy");
    busyPodId = await runPod(busyPod);
    busyId = await startIn(busyPodId, busyPod, containerConfig("spin", image.ref, ["sh", "-c", "while :; do :; done"]));
  });

  test("a busy loop: cumulative CPU rises, nano cores > 0, processes counted", async () => {
    const first = await containerStats(busyId);
    await Bun.sleep(300);
    const second = await containerStats(busyId);
    expect(second.attributes?.id).toBe(busyId);
    expect(second.attributes?.metadata?.name).toBe("spin");
    expect(second.cpu!.usage_core_nano_seconds!.value).toBeGreaterThan(first.cpu!.usage_core_nano_seconds!.value);
    expect(second.cpu!.usage_nano_cores!.value).toBeGreaterThan(0n);
    expect(second.cpu!.timestamp).toBeGreaterThan(0n);
    expect(second.memory!.working_set_bytes!.value).toBeGreaterThan(0n);
    expect(second.writable_layer?.fs_id?.mountpoint).toBe(crib.root);

    const pod = (await crib.client.call("RuntimeService", "PodSandboxStats", { pod_sandbox_id: busyPodId })).stats!;
    expect(pod.attributes?.id).toBe(busyPodId);
    expect(pod.linux!.containers.map((c) => c.attributes?.id)).toEqual([busyId]);
    // Without a cgroup_parent the pod is its containers added up: at least the spinner's CPU.
    expect(pod.linux!.cpu!.usage_core_nano_seconds!.value).toBeGreaterThanOrEqual(second.cpu!.usage_core_nano_seconds!.value);
    expect(pod.linux!.process!.process_count!.value).toBeGreaterThanOrEqual(1n);
  });

  test("filters and the streaming variants agree with the lists", async () => {
    const listed = await crib.client.call("RuntimeService", "ListContainerStats", { filter: { id: "", pod_sandbox_id: busyPodId, label_selector: {} } });
    expect(listed.stats.map((s) => s.attributes?.id)).toEqual([busyId]);
    const byLabel = await crib.client.call("RuntimeService", "ListContainerStats", { filter: { id: "", pod_sandbox_id: "", label_selector: { c: "spin" } } });
    expect(byLabel.stats.map((s) => s.attributes?.id)).toEqual([busyId]);
    const streamed: string[] = [];
    await crib.client.stream("RuntimeService", "StreamContainerStats", { filter: { id: busyId.slice(0, 12), pod_sandbox_id: "", label_selector: {} } }, (m) => {
      for (const s of m.container_stats) streamed.push(s.attributes?.id ?? "");
    });
    expect(streamed).toEqual([busyId]);

    const pods = await crib.client.call("RuntimeService", "ListPodSandboxStats", { filter: { id: busyPodId, label_selector: {} } });
    expect(pods.stats.map((s) => s.attributes?.id)).toEqual([busyPodId]);
    const streamedPods: string[] = [];
    await crib.client.stream("RuntimeService", "StreamPodSandboxStats", { filter: { id: "", label_selector: { app: "busy" } } }, (m) => {
      for (const s of m.pod_sandbox_stats) streamedPods.push(s.attributes?.id ?? "");
    });
    expect(streamedPods).toEqual([busyPodId]);
    const missing = await criError(crib.client.call("RuntimeService", "ContainerStats", { container_id: "f".repeat(64) }));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
  });

  test("filling /dev/shm grows the working set; available = limit - working set", async () => {
    const pod = podConfig("memory");
    const podId = await runPod(pod);
    const id = await startIn(podId, pod, containerConfig("hog", image.ref, ["sleep", "1000"], { linux: { resources: { memory_limit_in_bytes: 256n * MiB } } }));
    const before = await containerStats(id);
    await exec(id, ["dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=40"]);
    const after = await containerStats(id);
    const ws = after.memory!.working_set_bytes!.value;
    expect(ws).toBeGreaterThanOrEqual(before.memory!.working_set_bytes!.value + 30n * MiB);
    expect(after.memory!.usage_bytes!.value).toBeGreaterThanOrEqual(ws);
    expect(after.memory!.available_bytes!.value).toBe(256n * MiB - ws);
    expect(after.memory!.page_faults!.value).toBeGreaterThan(0n);
    expect(after.memory!.rss_bytes).not.toBeNull();
    await exec(id, ["rm", "/dev/shm/fill"]);
  });

  test("writing a file grows the writable layer's bytes and inodes", async () => {
    const before = await containerStats(busyId);
    await exec(busyId, ["dd", "if=/dev/urandom", "of=/data.bin", "bs=1k", "count=1024"]);
    const after = await until(() => containerStats(busyId), (s) => s.writable_layer!.used_bytes!.value >= before.writable_layer!.used_bytes!.value + MiB, "writable layer bytes");
    expect(after.writable_layer!.inodes_used!.value).toBeGreaterThan(before.writable_layer!.inodes_used!.value);
  });

  test("pod network: eth0 counters rise after traffic; loopback is left out", async () => {
    const pod = podConfig("net");
    const podId = await runPod(pod);
    const net0 = (await crib.client.call("RuntimeService", "PodSandboxStats", { pod_sandbox_id: podId })).stats!.linux!.network!;
    expect(net0.default_interface?.name).toBe("eth0");
    expect(net0.interfaces.map((i) => i.name)).not.toContain("lo");
    const id = await startIn(podId, pod, containerConfig("ping", image.ref, ["ping", "-c", "3", "-i", "0.2", net.gateway]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s, 30_000);
    expect(st.exit_code).toBe(0);
    const net1 = (await crib.client.call("RuntimeService", "PodSandboxStats", { pod_sandbox_id: podId })).stats!.linux!.network!;
    // 3 echo requests and 3 replies of 84 bytes (IP) each, at least.
    expect(net1.default_interface!.tx_bytes!.value).toBeGreaterThanOrEqual(net0.default_interface!.tx_bytes!.value + 3n * 84n);
    expect(net1.default_interface!.rx_bytes!.value).toBeGreaterThanOrEqual(net0.default_interface!.rx_bytes!.value + 3n * 84n);
    expect(net1.timestamp).toBeGreaterThan(0n);
  });

  test("ListMetricDescriptors names every metric ListPodSandboxMetrics sends, with matching labels", async () => {
    const { descriptors } = await crib.client.call("RuntimeService", "ListMetricDescriptors", {});
    const byName = new Map(descriptors.map((d) => [d.name, d]));
    for (const d of descriptors) expect(d.help).not.toBe("");
    const { pod_metrics } = await crib.client.call("RuntimeService", "ListPodSandboxMetrics", {});
    const busy = pod_metrics.find((p) => p.pod_sandbox_id === busyPodId)!;
    expect(busy).toBeDefined();
    const all = pod_metrics.flatMap((p) => [...p.metrics, ...p.container_metrics.flatMap((c) => c.metrics)]);
    for (const m of all) {
      const d = byName.get(m.name);
      expect(d).toBeDefined();
      expect(m.label_values).toHaveLength(d!.label_keys.length);
    }
    const spin = busy.container_metrics.find((c) => c.container_id === busyId)!;
    const cpu = spin.metrics.find((m) => m.name === "container_cpu_usage_seconds_total")!;
    const keys = byName.get("container_cpu_usage_seconds_total")!.label_keys;
    const label = (k: string) => cpu.label_values[keys.indexOf(k)];
    expect(label("container")).toBe("spin");
    expect(label("pod")).toBe("busy");
    expect(label("namespace")).toBe("default");
    expect(cpu.metric_type).toBe(0); // COUNTER
    expect(spin.metrics.find((m) => m.name === "container_memory_working_set_bytes")!.value!.value).toBeGreaterThan(0n);
    expect(busy.metrics.some((m) => m.name === "container_network_receive_bytes_total")).toBe(true);
    const streamed: string[] = [];
    await crib.client.stream("RuntimeService", "StreamPodSandboxMetrics", {}, (m) => {
      for (const p of m.pod_sandbox_metrics) streamed.push(p.pod_sandbox_id);
    });
    expect(streamed.sort()).toEqual(pod_metrics.map((p) => p.pod_sandbox_id).sort());
  });

  test("crib ctl stats and statsp print a table", async () => {
    const run = async (args: string[]) => {
      const p = Bun.spawn([CRIB_BIN, "ctl", "-r", `unix://${crib.socket}`, ...args], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      expect(err).toBe("");
      expect(code).toBe(0);
      return out;
    };
    const stats = await run(["stats", "--pod", busyPodId, "-s", "0.3"]);
    expect(stats.split("\n")[0]).toMatch(/^CONTAINER\s+NAME\s+CPU %\s+MEM\s+DISK\s+INODES$/);
    const row = stats.split("\n").find((l) => l.includes("spin"))!;
    expect(row.startsWith(busyId.slice(0, 13))).toBe(true);
    expect(Number(row.split(/\s+/)[2])).toBeGreaterThan(0);
    const statsp = await run(["statsp", busyPodId, "-s", "0.3"]);
    expect(statsp).toContain("busy");
    expect(JSON.parse(await run(["stats", "-o", "json", busyId])).stats[0].attributes.id).toBe(busyId);
  });
});

type Received = Array<{ id: string; type: number; pod?: string; podState?: number; containers: Array<{ id: string; state: number }> }>;

/** A GetContainerEvents subscriber that reads everything into `got`. */
function subscribe(): { got: Received; stop: () => void; done: Promise<void> } {
  const got: Received = [];
  const ac = new AbortController();
  const done = crib.client.stream("RuntimeService", "GetContainerEvents", {}, (e: ContainerEventResponse) => {
    got.push({
      id: e.container_id, type: e.container_event_type, pod: e.pod_sandbox_status?.id, podState: e.pod_sandbox_status?.state,
      containers: e.containers_statuses.map((c) => ({ id: c.id, state: c.state })),
    });
  }, { signal: ac.signal });
  return { got, stop: () => ac.abort(), done };
}

/** Subscribers are live once they see an event: run a throwaway pod until each has seen it. */
async function whenLive(subs: Array<{ got: Received }>): Promise<void> {
  const cfg = podConfig("probe", { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
  const id = await runPod(cfg);
  await until(async () => subs.every((s) => s.got.some((e) => e.id === id)), (v) => v, "subscribers live");
  await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
}

describe("container events", () => {
  test("two subscribers see a pod's life in order, with statuses", async () => {
    const a = subscribe();
    const b = subscribe();
    await whenLive([a, b]);
    const cfg = podConfig("events");
    const podId = await runPod(cfg);
    const cid = await startIn(podId, cfg, containerConfig("sleeper", image.ref, ["sleep", "1000"]));
    await crib.client.call("RuntimeService", "StopContainer", { container_id: cid, timeout: 0n });
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: cid });
    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: podId });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });

    const E = ContainerEventType;
    const want = [
      [podId, E.CONTAINER_CREATED_EVENT], [podId, E.CONTAINER_STARTED_EVENT],
      [cid, E.CONTAINER_CREATED_EVENT], [cid, E.CONTAINER_STARTED_EVENT], [cid, E.CONTAINER_STOPPED_EVENT], [cid, E.CONTAINER_DELETED_EVENT],
      [podId, E.CONTAINER_STOPPED_EVENT], [podId, E.CONTAINER_DELETED_EVENT],
    ];
    const mine = (s: { got: Received }) => s.got.filter((e) => e.id === podId || e.id === cid);
    for (const s of [a, b]) {
      await until(async () => mine(s).length, (n) => n >= want.length, "events of the pod's life");
      expect(mine(s).map((e) => [e.id, e.type])).toEqual(want);
      for (const e of mine(s)) expect(e.pod).toBe(podId);
      const ev = mine(s);
      expect(ev[3]!.containers).toEqual([{ id: cid, state: ContainerState.CONTAINER_RUNNING }]);
      expect(ev[4]!.containers).toEqual([{ id: cid, state: ContainerState.CONTAINER_EXITED }]);
      expect(ev[5]!.containers).toEqual([]);
      expect(ev[6]!.podState).toBe(PodSandboxState.SANDBOX_NOTREADY);
      expect(ev[7]!.podState).toBe(PodSandboxState.SANDBOX_NOTREADY);
    }
    a.stop();
    b.stop();
    await Promise.all([a.done, b.done]);
  });

  test("a container that exits at once: STARTED still comes before STOPPED", async () => {
    const s = subscribe();
    await whenLive([s]);
    const cfg = podConfig("quick");
    const podId = await runPod(cfg);
    const E = ContainerEventType;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await startIn(podId, cfg, containerConfig(`quick${i}`, image.ref, ["true"])));
    for (const cid of ids) {
      await until(async () => s.got.filter((e) => e.id === cid).length, (n) => n >= 3, "a quick container's events");
      expect(s.got.filter((e) => e.id === cid).map((e) => e.type)).toEqual([E.CONTAINER_CREATED_EVENT, E.CONTAINER_STARTED_EVENT, E.CONTAINER_STOPPED_EVENT]);
    }
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    s.stop();
    await s.done;
  });

  test("a subscriber that stops reading is dropped with RESOURCE_EXHAUSTED; the others and the daemon go on", async () => {
    const fast = subscribe();
    // The stalled client gets a connection of its own (a shared one would share its flow-control window).
    const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition("RuntimeService"), "RuntimeService");
    const stalledClient = new Ctor(`unix:${crib.socket}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    const stalled = (stalledClient as unknown as { GetContainerEvents(req: object): grpc.ClientReadableStream<unknown> }).GetContainerEvents({});
    let stalledGot = 0;
    const stalledEnd = new Promise<grpc.ServiceError | undefined>((resolve) => {
      stalled.on("data", () => stalledGot++);
      stalled.on("error", (e: grpc.ServiceError) => resolve(e));
      stalled.on("end", () => resolve(undefined));
    });
    await whenLive([fast]);
    await until(async () => stalledGot, (n) => n > 0, "stalled subscriber live");
    stalled.pause();

    // Pods with big annotations (as the kubelet allows, up to 256 KiB) fill buffers fast.
    const annotations = { big: "x".repeat(200 * 1024) };
    const dropped = async () => sampleValue(await scrape(), "crib_container_events_dropped_subscribers_total", "crib_container_events_dropped_subscribers_total");
    expect(await dropped()).toBe(0);
    const pods: string[] = [];
    for (let i = 0; i < 60 && (await dropped()) === 0; i++) {
      const cfg = podConfig(`flood${i}`, { annotations, linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
      const id = await runPod(cfg);
      pods.push(id);
      await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: id });
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
    }
    expect(await dropped()).toBe(1);
    // The daemon answers, and the reading subscriber got every event.
    expect((await crib.client.call("RuntimeService", "Version", { version: "" })).runtime_name).toBe("crib");
    const mine = () => fast.got.filter((e) => pods.includes(e.id)).length;
    await until(async () => mine(), (n) => n >= pods.length * 4, "the reading subscriber's events");
    expect(mine()).toBe(pods.length * 4);

    stalled.resume();
    const err = await stalledEnd;
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toContain("fell behind");
    stalledClient.close();
    fast.stop();
    await fast.done;
  });

  test("crib ctl events prints events until interrupted", async () => {
    const p = Bun.spawn([CRIB_BIN, "ctl", "-r", `unix://${crib.socket}`, "events"], { stdout: "pipe", stderr: "pipe" });
    let out = "";
    const reader = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of p.stdout as ReadableStream<Uint8Array>) out += dec.decode(chunk, { stream: true });
    })();
    let podId = "";
    try {
      await until(async () => {
        // Until the command is subscribed, each throwaway pod may go unseen: make another.
        const cfg = podConfig("ctl-events", { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
        podId = await runPod(cfg);
        await Bun.sleep(100);
        const seen = out.includes(podId.slice(0, 13));
        await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
        return seen;
      }, (v) => v, "crib ctl events output");
    } finally {
      p.kill("SIGINT");
    }
    expect(await p.exited).toBe(0);
    await reader;
    expect(out).toMatch(new RegExp(`CREATED pod ${podId.slice(0, 13)} \\(pod default/ctl-events\\)`));
  });
});

describe("/metrics", () => {
  test("RPC counts by code, a latency histogram, pulls, images, containers and pods, the process", async () => {
    const before = await scrape();
    const okLabels = { grpc_service: "runtime.v1.RuntimeService", grpc_method: "Version", grpc_code: "OK" };
    const versions = sampleValue(before, "grpc_server_handled_total", "grpc_server_handled_total", okLabels);
    for (let i = 0; i < 3; i++) await crib.client.call("RuntimeService", "Version", { version: "" });
    const missing = await criError(crib.client.call("RuntimeService", "ContainerStatus", { container_id: "e".repeat(64), verbose: false }));
    expect(missing).toBeInstanceOf(CriError);
    const after = await scrape();
    expect(sampleValue(after, "grpc_server_handled_total", "grpc_server_handled_total", okLabels)).toBe(versions + 3);
    expect(sampleValue(after, "grpc_server_handled_total", "grpc_server_handled_total", { grpc_method: "ContainerStatus", grpc_code: "NotFound" })).toBeGreaterThanOrEqual(1);
    const buckets = after.get("grpc_server_handling_seconds")!.samples.filter((s) => s.name === "grpc_server_handling_seconds_bucket" && s.labels.grpc_method === "Version");
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets.find((s) => s.labels.le === "+Inf")!.value).toBeGreaterThanOrEqual(versions + 3);
    expect(sampleValue(after, "grpc_server_handling_seconds", "grpc_server_handling_seconds_count", { grpc_method: "Version" })).toBeGreaterThanOrEqual(versions + 3);

    expect(sampleValue(after, "crib_image_pulled_bytes_total", "crib_image_pulled_bytes_total")).toBeGreaterThan(0);
    expect(sampleValue(after, "crib_images", "crib_images")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "crib_containers", "crib_containers", { state: "running" })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "crib_pod_sandboxes", "crib_pod_sandboxes", { state: "ready" })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "process_resident_memory_bytes", "process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
    expect(sampleValue(after, "process_cpu_seconds_total", "process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(after.get("process_cpu_seconds_total")?.type).toBe("counter");

    const other = await fetch(metricsUrl.replace("/metrics", "/other"));
    expect(other.status).toBe(404);
  });
});
