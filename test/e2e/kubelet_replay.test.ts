// Replays what a real kubelet 1.28 sent (test/fixtures/kubelet-1.28/: five pods'
// RunPodSandbox and CreateContainer requests, in call order) against the compiled
// daemon, field for field. Only what belongs to the kubelet's machine is moved: its
// directories (/var/lib/kubelet, /var/log/pods) into temp dirs, the pods' cgroup parents
// under a cgroup of this test's own, the image IDs to images this test pushed, and the
// kubelet's sandbox ids to the ones crib returned. Every pod must run.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { criType } from "../helpers/protobuf_reference.ts";
import { ContainerState, PodSandboxState, type ContainerConfig, type Out, type PodSandboxConfig } from "../../src/protocol/types.ts";
import { logLines, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, shutdownCrib, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage } from "../helpers/images.ts";
import { monitorList, mountsUnder, runcList, runcRoot, testBridge, type TestBridge } from "../helpers/leaks.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";

/** The requests as the kubelet sent them, copied from the shared fixtures so a clean checkout has them. */
const FIXTURES = join(import.meta.dir, "../fixtures/kubelet-1.28");

/** The fixtures' two image IDs: a busybox-like image and the web pod's server image. */
const BUSYBOX_ID = "sha256:9ad8680dc605c0d9d3c6b712afd8e97298d04fb6744aca3516c4113b49d17307";
const WEB_ID = "sha256:aa7887d168c37ee6ee55b5cc694b6ebedb8dadfe6df12d0bceef358d42e11a0b";

/** How each container ends up, as its pod spec meant it (the crash container exits 3 by design). */
const EXPECTED: Record<string, "running" | { exitCode: number }> = {
  sleep: "running",
  crash: { exitCode: 3 },
  nginx: "running",
  app: "running",
  init: { exitCode: 0 },
  main: "running",
};

// The fixture JSON: proto field names, enums as numbers, zero values left out.
type Json = Record<string, unknown>;
interface RunPodSandboxFixture { config: Out<PodSandboxConfig> }
interface CreateContainerFixture { pod_sandbox_id: string; config: Out<ContainerConfig>; sandbox_config: Out<PodSandboxConfig> }

let reg: StartedRegistry;
let crib: CribInstance;
let net: TestBridge;
let work = "";
/** A cgroup of this test's own that the pods' cgroup parents move under. */
let cgroupRoot = "";
const imageIds = new Map<string, string>();

/** The request as sent, with the kubelet's host paths and ids moved to this test's (see the file's head). */
const remap = {
  path(p: string): string {
    for (const prefix of ["/var/lib/kubelet/", "/var/log/pods/"]) {
      if (p.startsWith(prefix)) return join(work, prefix.slice(1), p.slice(prefix.length));
    }
    throw new Error(`a host path the replay does not know how to move: ${p}`);
  },
  sandbox(c: Out<PodSandboxConfig>): Out<PodSandboxConfig> {
    const linux = c.linux ? { ...c.linux, cgroup_parent: `${cgroupRoot}${c.linux.cgroup_parent ?? ""}` } : c.linux;
    return { ...c, log_directory: remap.path(c.log_directory ?? ""), linux };
  },
  container(c: Out<ContainerConfig>): Out<ContainerConfig> {
    const image = imageIds.get(c.image?.image ?? "");
    if (!image) throw new Error(`the fixture's image ${c.image?.image} has no stand-in`);
    return { ...c, image: { ...c.image, image }, mounts: (c.mounts ?? []).map((m) => ({ ...m, host_path: remap.path(m.host_path ?? "") })) };
  },
};

/**
 * What the kubelet puts in place before CreateContainer: the pod's log dir, its etc-hosts
 * file, an empty termination-log file per container, and emptyDir volumes (mode 0777).
 */
function prepareHostPaths(c: Out<ContainerConfig>): void {
  for (const m of c.mounts ?? []) {
    const p = m.host_path ?? "";
    mkdirSync(dirname(p), { recursive: true });
    if (m.container_path === "/etc/hosts") writeFileSync(p, "127.0.0.1\tlocalhost\n");
    else if (m.container_path === "/dev/termination-log") writeFileSync(p, "");
    else {
      mkdirSync(p, { recursive: true });
      chmodSync(p, 0o777);
    }
  }
}

/**
 * Encoding must keep every field of the fixture: the client's proto has to know each
 * one, or the replay would silently send less than the kubelet did.
 */
function expectNothingDropped(typeName: string, req: object): void {
  const type = criType(`runtime.v1.${typeName}`);
  const back = type.toObject(type.fromObject(req as Json), { longs: Number, enums: Number, defaults: false });
  expect(back).toEqual(JSON.parse(JSON.stringify(req, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v))));
}

/** The v2 root, or every v1 hierarchy (and a hybrid's unified one): where runc makes cgroups. */
function cgroupMounts(): string[] {
  if (existsSync("/sys/fs/cgroup/cgroup.controllers")) return ["/sys/fs/cgroup"];
  return readdirSync("/sys/fs/cgroup")
    .map((d) => join("/sys/fs/cgroup", d))
    .filter((d) => existsSync(join(d, "cgroup.procs")));
}

/** Directories under `dir`, deepest first. */
function subdirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...subdirs(join(dir, e.name)), join(dir, e.name));
  }
  return out;
}

beforeAll(async () => {
  work = tempDir("crib-replay-");
  cgroupRoot = `/crib-replay-${process.pid}`;
  reg = await startRegistry();
  const busybox = await pushImage(reg, "replay/busybox:1", { layers: [busyboxLayer()] });
  // The web pod's image has no command in its CreateContainer: its entrypoint serves port 80.
  const web = await pushImage(reg, "replay/web:1", {
    layers: [[...busyboxLayer(), { type: "dir", path: "www/" }, { type: "file", path: "www/index.html", data: "ok\n" }]],
    config: { Entrypoint: ["httpd", "-f", "-p", "80", "-h", "/www"], ExposedPorts: { "80/tcp": {} } },
  });
  net = testBridge(work, "replay");
  // A kubelet node's usual CNI chain: bridge, then portmap for hostPort (the rich pod has one).
  const conf = join(net.confDir, "10-replay.conflist");
  const list = JSON.parse(readFileSync(conf, "utf8")) as { plugins: object[] };
  list.plugins.push({ type: "portmap", capabilities: { portMappings: true } });
  writeFileSync(conf, JSON.stringify(list));
  crib = await startCrib({ cni: { confDir: net.confDir, binDirs: ["/usr/lib/cni"] } });
  for (const [fixtureId, ref] of [[BUSYBOX_ID, busybox.ref], [WEB_ID, web.ref]] as const) {
    const { image_ref } = await crib.client.call("ImageService", "PullImage", { image: { image: ref }, auth: null });
    imageIds.set(fixtureId, image_ref);
  }
});

afterAll(async () => {
  await shutdownCrib(crib);
  net?.remove();
  await reg?.stop();
  for (const m of cgroupRoot ? cgroupMounts() : []) {
    for (const d of [...subdirs(join(m, cgroupRoot)), join(m, cgroupRoot)]) {
      try {
        rmdirSync(d);
      } catch {
        // not there, or a leak the test reported
      }
    }
  }
});

describe("a kubelet 1.28's requests, replayed", () => {
  test("every pod runs, every container ends as its pod meant, and nothing is left after removal", async () => {
    const client = crib.client;
    const dir = FIXTURES;
    const files = readdirSync(dir).filter((f) => /^\d{3}-\w+\.json$/.test(f)).sort();
    expect(files).toHaveLength(12);
    /** The kubelet's pod uid -> crib's sandbox id. */
    const pods = new Map<string, string>();
    const containers: { id: string; podId: string; name: string }[] = [];

    /** Whether a container reached the state its pod means for it (an exit, or running). */
    const settled = (id: string, name: string) =>
      waitStatus(client, id, (s) => {
        const want = EXPECTED[name];
        if (want === "running") return s.state === ContainerState.CONTAINER_RUNNING && s;
        return s.state === ContainerState.CONTAINER_EXITED && s;
      });

    for (const file of files) {
      const raw = JSON.parse(readFileSync(join(dir, file), "utf8")) as Json;
      if (file.endsWith("-RunPodSandbox.json")) {
        const fx = raw as unknown as RunPodSandboxFixture;
        const req = { config: remap.sandbox(fx.config) };
        expectNothingDropped("RunPodSandboxRequest", req);
        mkdirSync(req.config.log_directory ?? "", { recursive: true });
        const { pod_sandbox_id } = await client.call("RuntimeService", "RunPodSandbox", req).catch((e: unknown) => {
          throw new Error(`${file}: ${String(e)}`);
        });
        pods.set(fx.config.metadata?.uid ?? "", pod_sandbox_id);
        continue;
      }
      const fx = raw as unknown as CreateContainerFixture;
      const podId = pods.get(fx.sandbox_config.metadata?.uid ?? "");
      if (!podId) throw new Error(`${file}: its pod was not run first`);
      // The kubelet creates a pod's next container (main after init, a restart after a
      // crash) once the ones before it have done what they do.
      for (const c of containers.filter((x) => x.podId === podId)) await settled(c.id, c.name);
      const req = { pod_sandbox_id: podId, config: remap.container(fx.config), sandbox_config: remap.sandbox(fx.sandbox_config) };
      expectNothingDropped("CreateContainerRequest", req);
      prepareHostPaths(req.config);
      const { container_id } = await client.call("RuntimeService", "CreateContainer", req).catch((e: unknown) => {
        throw new Error(`${file}: ${String(e)}`);
      });
      await client.call("RuntimeService", "StartContainer", { container_id });
      containers.push({ id: container_id, podId, name: fx.config.metadata?.name ?? "" });
    }

    // Every pod ready; every container running or exited with the code its command gives.
    expect(pods.size).toBe(5);
    for (const podId of pods.values()) {
      const st = await client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: podId, verbose: false });
      expect(st.status?.state).toBe(PodSandboxState.SANDBOX_READY);
    }
    expect(containers.map((c) => c.name)).toEqual(["crash", "sleep", "nginx", "init", "app", "crash", "main"]);
    const logs = new Map<string, string[]>();
    for (const c of containers) {
      const st = await settled(c.id, c.name);
      const want = EXPECTED[c.name]!;
      if (want !== "running") expect({ name: c.name, exitCode: st.exit_code }).toEqual({ name: c.name, exitCode: want.exitCode });
      logs.set(c.name, (await logLines(st.log_path)).map(([, , text]) => text));
    }
    // What the containers saw says the requests were applied, not just accepted.
    expect(logs.get("crash")).toEqual(["dying"]);
    const waitLog = async (name: string, pred: (lines: string[]) => boolean) => {
      const c = containers.find((x) => x.name === name)!;
      const st = await waitStatus(client, c.id, (s) => s.log_path !== "" && s);
      for (let i = 0; i < 400; i++) {
        const lines = (await logLines(st.log_path)).map(([, , text]) => text);
        if (pred(lines)) return lines;
        await Bun.sleep(50);
      }
      throw new Error(`${name}: its log never showed what was expected: ${JSON.stringify(await logLines(st.log_path))}`);
    };
    await waitLog("main", (l) => l.includes("hello-from-init")); // the emptyDir the init container wrote
    const id = (await waitLog("app", (l) => l.some((x) => x.startsWith("uid="))))[0] ?? "";
    expect(id).toMatch(/^uid=1000(\(\w+\))? gid=3000 groups=.*\b2000\b.*\b4000\b/);
    // The web pod serves on its pod IP, as the kubelet's HTTP probes would find it.
    const web = await client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: pods.get("a48e655cd11efea664eeb2043f1a5b7c")!, verbose: false });
    const ip = web.status?.network?.ip ?? "";
    expect(ip.startsWith(net.subnet.split(".").slice(0, 3).join("."))).toBe(true);
    let served = "";
    for (let i = 0; i < 200 && served === ""; i++) {
      served = await fetch(`http://${ip}:80/`).then((r) => r.text(), () => "");
      if (served === "") await Bun.sleep(50);
    }
    expect(served).toBe("ok\n");

    // Tear down as the kubelet does: stop and remove each container, then each pod.
    await Promise.all(containers.map((c) => client.call("RuntimeService", "StopContainer", { container_id: c.id, timeout: 2n })));
    for (const c of containers) await client.call("RuntimeService", "RemoveContainer", { container_id: c.id });
    for (const podId of pods.values()) await client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: podId });
    for (const podId of pods.values()) await client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });

    expect((await client.call("RuntimeService", "ListPodSandbox", { filter: null })).items).toEqual([]);
    expect((await client.call("RuntimeService", "ListContainers", { filter: null })).containers).toEqual([]);
    expect(mountsUnder(crib.root)).toEqual([]);
    expect(mountsUnder(crib.state)).toEqual([]);
    expect(runcList(runcRoot(crib.state))).toEqual([]);
    expect(await monitorList(crib.state)).toEqual([]);
    expect(net.ports()).toEqual([]);
    expect(net.allocated()).toEqual([]);
    // runc removed each container's cgroup: only the (empty) pod parents remain.
    for (const m of cgroupMounts()) {
      expect(subdirs(join(m, cgroupRoot)).filter((d) => basename(d).startsWith("crib-"))).toEqual([]);
    }
  });
});
