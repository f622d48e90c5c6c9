// The node features of Kubernetes 1.30+ on the compiled daemon (issue 15): what
// RuntimeStatus advertises per runtime handler (from the runtime's own `features` and the
// kernel), and each feature working, or refused with a clear code, under real runc.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { ContainerState, MountPropagation, NamespaceMode, SupplementalGroupsPolicy } from "../../src/protocol/types.ts";
import { MNT_DETACH, mount, umount2 } from "../../src/sys/mount.ts";
import { containerConfig, criError, logLines, podConfig, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, runCrib, shutdownCrib, startCrib } from "../helpers/daemon.ts";
import { runcList, runcRoot } from "../helpers/leaks.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";

let reg: StartedRegistry;
let image: PushedImage;
let crib: CribInstance;
let fakeRuntime = "";
let cdiLow = "";
let cdiHigh = "";
const cleanups: (() => void)[] = [];

/**
 * A runtime whose `features` knows neither "rro" nor id-mapped mounts nor user namespaces
 * (as an old or cut-down runc); it runs containers with runc. (A runtime that lacks only
 * idmap still gets user namespaces: crib makes the id-mapped mounts itself.)
 */
function writeFakeRuntime(dir: string): string {
  const path = join(dir, "oldrunc");
  const features = { ociVersionMin: "1.0.0", ociVersionMax: "1.0.2", mountOptions: ["bind", "rbind", "ro", "rw", "rprivate"], linux: { namespaces: ["mount", "network", "pid", "ipc", "uts"] } };
  writeFileSync(path, `#!/bin/sh\nif [ "$1" = features ]; then echo '${JSON.stringify(features)}'; exit 0; fi\nexec runc "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "node/busybox:1", { layers: [busyboxLayer()] });
  fakeRuntime = writeFakeRuntime(tempDir("crib-fake-runtime-"));
  cdiLow = tempDir("crib-cdi-low-");
  cdiHigh = tempDir("crib-cdi-high-");
  crib = await startCrib({
    runtime: { default: "runc", handlers: { runc: { path: "runc" }, old: { path: fakeRuntime }, crun: { path: "/nonexistent/crun" } } },
    cdi: { specDirs: [cdiLow, cdiHigh] },
  });
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
});

afterAll(async () => {
  await shutdownCrib(crib);
  for (const c of cleanups.splice(0).reverse()) c();
  await reg?.stop();
});

async function handlers() {
  const s = await crib.client.call("RuntimeService", "Status", { verbose: false });
  return Object.fromEntries(s.runtime_handlers.map((h) => [h.name, h.features]));
}

/** Run `sh -c script` in a new pod (on `handler`) until it exits; its output lines. */
async function runScript(name: string, script: string, extra: Parameters<typeof containerConfig>[3] = {}, handler = ""): Promise<string[]> {
  const pod = podConfig(name);
  const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod, runtime_handler: handler });
  const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig(name, image.ref, ["sh", "-c", script], extra), sandbox_config: pod });
  await crib.client.call("RuntimeService", "StartContainer", { container_id: id });
  const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
  const lines = (await logLines(st.log_path)).map((l) => l[2]);
  await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  return lines;
}

describe("RuntimeStatus per handler", () => {
  test("lists only handlers whose runtime binary exists, the default one also as \"\"", async () => {
    const s = await crib.client.call("RuntimeService", "Status", { verbose: false });
    expect(s.runtime_handlers.map((h) => h.name)).toEqual(["", "runc", "old"]);
    const h = await handlers();
    expect(h[""]).toEqual(h.runc);
  });

  test("runc 1.1.5 on this kernel: recursive read-only mounts and user namespaces advertised", async () => {
    const h = await handlers();
    expect(h.runc).toEqual({ recursive_read_only_mounts: true, user_namespaces: true });
    const s = await crib.client.call("RuntimeService", "Status", { verbose: false });
    expect(s.features?.user_namespaces_host_network).toBe(false);
  });

  test("a runtime whose features lack rro and idmap: both flags false", async () => {
    const h = await handlers();
    expect(h.old).toEqual({ recursive_read_only_mounts: false, user_namespaces: false });
  });

  test("crib ctl info shows each handler's features and why one is off", async () => {
    const r = await runCrib(["ctl", "-r", `unix://${crib.socket}`, "info"]);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { featureSupport: { handlers: Record<string, { recursiveReadOnlyMounts: { supported: boolean; reason: string } }> } };
    expect(info.featureSupport.handlers.runc?.recursiveReadOnlyMounts).toEqual({ supported: true, reason: "" });
    const old = info.featureSupport.handlers.old?.recursiveReadOnlyMounts;
    expect(old?.supported).toBe(false);
    expect(old?.reason).toContain('does not list the mount option "rro"');
  });
});

describe("supplemental groups policy (KEP-3619)", () => {
  /** Run `id -G` as app (1000, listed in the image's group "extra" 2000) with supplemental group 3000. */
  async function groupsOf(name: string, containerPolicy: SupplementalGroupsPolicy, podPolicy: SupplementalGroupsPolicy = SupplementalGroupsPolicy.Merge) {
    const pod = podConfig(name, {
      linux: { cgroup_parent: "", security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 }, supplemental_groups_policy: podPolicy } },
    });
    const sc = { run_as_user: { value: 1000n }, supplemental_groups: [3000n], supplemental_groups_policy: containerPolicy };
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    try {
      const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", {
        pod_sandbox_id: podId, config: containerConfig(name, image.ref, ["id", "-G"], { linux: { security_context: sc } }), sandbox_config: pod,
      });
      await crib.client.call("RuntimeService", "StartContainer", { container_id: id });
      const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
      const out = (await logLines(st.log_path)).map((l) => l[2]);
      return { out, user: st.user?.linux };
    } finally {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    }
  }

  test("advertised", async () => {
    const s = await crib.client.call("RuntimeService", "Status", { verbose: false });
    expect(s.features?.supplemental_groups_policy).toBe(true);
  });

  test("Merge: the image's /etc/group memberships are added; ContainerStatus.user says what the process has", async () => {
    const r = await groupsOf("merge", SupplementalGroupsPolicy.Merge);
    expect(r.out).toEqual(["1000 2000 3000"]);
    expect(r.user).toEqual({ uid: 1000n, gid: 1000n, supplemental_groups: [1000n, 2000n, 3000n] });
  });

  test("Strict: only the requested groups", async () => {
    const r = await groupsOf("strict", SupplementalGroupsPolicy.Strict);
    expect(r.out).toEqual(["1000 3000"]);
    expect(r.user).toEqual({ uid: 1000n, gid: 1000n, supplemental_groups: [1000n, 3000n] });
  });

  test("Strict set on the pod only (an older kubelet) is Strict", async () => {
    expect((await groupsOf("strict-pod", SupplementalGroupsPolicy.Merge, SupplementalGroupsPolicy.Strict)).out).toEqual(["1000 3000"]);
  });

  test("an unknown policy is INVALID_ARGUMENT naming the field", async () => {
    const e = await criError(groupsOf("bad-policy", 7 as SupplementalGroupsPolicy));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain("supplemental_groups_policy 7 is neither Merge (0) nor Strict (1)");
  });
});

describe("recursive read-only mounts (KEP-3857)", () => {
  let vol = "";
  beforeAll(() => {
    // A volume with a mount inside it: plain "ro" leaves the inner mount writable.
    vol = join(tempDir("crib-rro-"), "vol");
    mkdirSync(join(vol, "nested"), { recursive: true });
    mount("tmpfs", join(vol, "nested"), "tmpfs", 0, "size=1m");
    cleanups.push(() => umount2(join(vol, "nested"), MNT_DETACH));
  });
  const volMount = (rro: boolean, propagation: MountPropagation = MountPropagation.PROPAGATION_PRIVATE) => ({
    mounts: [{ container_path: "/data", host_path: vol, readonly: true, recursive_read_only: rro, propagation }],
  });
  const probe = "touch /data/nested/f 2>/dev/null && echo nested-writable || echo nested-readonly; touch /data/f 2>/dev/null && echo top-writable || echo top-readonly";

  test("a nested mount under an rro bind mount is read-only inside the container", async () => {
    expect(await runScript("rro", probe, volMount(true))).toEqual(["nested-readonly", "top-readonly"]);
  });

  test("control: plain readonly leaves the nested mount writable", async () => {
    expect(await runScript("ro", probe, volMount(false))).toEqual(["nested-writable", "top-readonly"]);
  });

  test("rro without private propagation is INVALID_ARGUMENT", async () => {
    const pod = podConfig("rro-prop");
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    const e = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig("c", image.ref, ["true"], volMount(true, MountPropagation.PROPAGATION_HOST_TO_CONTAINER)), sandbox_config: pod }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain("recursive_read_only needs private propagation");
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });

  test("rro on a handler whose runtime lacks it is FAILED_PRECONDITION saying why", async () => {
    const pod = podConfig("rro-old");
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod, runtime_handler: "old" });
    const e = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig("c", image.ref, ["true"], volMount(true)), sandbox_config: pod }));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain('mount /data: recursive_read_only is not available with this runtime handler: runtime old does not list the mount option "rro"');
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });

  test("the old handler still runs containers without rro", async () => {
    expect(await runScript("old-plain", "echo ok", {}, "old")).toEqual(["ok"]);
  });
});


describe("CDI devices", () => {
  let data = "";
  let marker = "";
  beforeAll(() => {
    data = tempDir("crib-cdi-data-");
    writeFileSync(join(data, "f"), "from-cdi-mount\n");
    marker = join(tempDir("crib-cdi-hook-"), "hooked");
    // Harmless devices: /dev/null and /dev/zero under other names.
    writeFileSync(join(cdiLow, "example.yaml"), stringify({
      cdiVersion: "0.6.0",
      kind: "example.com/dev",
      containerEdits: { env: ["CDI_COMMON=1"] },
      devices: [
        {
          name: "nul",
          containerEdits: {
            deviceNodes: [{ path: "/dev/crib-null", hostPath: "/dev/null" }],
            env: ["CDI_DEV=nul"],
            mounts: [{ hostPath: data, containerPath: "/cdi-data", options: ["rbind", "ro"] }],
            hooks: [{ hookName: "createRuntime", path: "/bin/sh", args: ["sh", "-c", `echo hooked > ${marker}`] }],
          },
        },
        { name: "zero", containerEdits: { deviceNodes: [{ path: "/dev/crib-zero", hostPath: "/dev/zero", permissions: "r" }] } },
        { name: "over", containerEdits: { env: ["OVER=low"] } },
      ],
    }));
    // The later directory overrides "over"; two of its files both define "twin".
    writeFileSync(join(cdiHigh, "a.json"), JSON.stringify({ cdiVersion: "0.6.0", kind: "example.com/dev", devices: [{ name: "over", containerEdits: { env: ["OVER=high"] } }, { name: "twin", containerEdits: {} }] }));
    writeFileSync(join(cdiHigh, "b.json"), JSON.stringify({ cdiVersion: "0.6.0", kind: "example.com/dev", devices: [{ name: "twin", containerEdits: {} }] }));
    writeFileSync(join(cdiHigh, "broken.json"), "{ not json");
  });

  const script = "[ -c /dev/crib-null ] && echo char-null; echo x > /dev/crib-null && echo wrote-null; head -c 1 /dev/crib-zero | wc -c; env | grep -E '^(CDI_|OVER=)' | sort; cat /cdi-data/f";

  test("CDI_devices: device nodes, cgroup rules, env, mounts and hooks from the spec files", async () => {
    const lines = await runScript("cdi", script, { CDI_devices: [{ name: "example.com/dev=nul" }, { name: "example.com/dev=zero" }, { name: "example.com/dev=over" }] });
    expect(lines).toEqual(["char-null", "wrote-null", "1", "CDI_COMMON=1", "CDI_DEV=nul", "OVER=high", "from-cdi-mount"]);
    expect(readFileSync(marker, "utf8")).toBe("hooked\n");
  });

  test("the cdi.k8s.io/ annotations of device plugins ask for devices too", async () => {
    const lines = await runScript("cdi-ann", "[ -c /dev/crib-zero ] && echo char-zero; [ -e /dev/crib-null ] || echo no-null", { annotations: { "cdi.k8s.io/plugin_dev0": "example.com/dev=zero" } });
    expect(lines).toEqual(["char-zero", "no-null"]);
  });

  async function createWith(devices: string[]) {
    const pod = podConfig("cdi-bad");
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    try {
      return await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig("c", image.ref, ["true"], { CDI_devices: devices.map((name) => ({ name })) }), sandbox_config: pod }));
    } finally {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    }
  }

  test("an unknown device is INVALID_ARGUMENT naming it", async () => {
    const e = await createWith(["example.com/dev=nope"]);
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain(`CDI device "example.com/dev=nope" is not defined by any spec file in ${cdiLow}, ${cdiHigh}`);
  });

  test("an ambiguous device is INVALID_ARGUMENT naming it and its files", async () => {
    const e = await createWith(["example.com/dev=twin"]);
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain(`CDI device "example.com/dev=twin" is ambiguous: it is defined by ${join(cdiHigh, "a.json")} and ${join(cdiHigh, "b.json")}`);
  });

  test("a name that is not vendor.com/class=name is INVALID_ARGUMENT", async () => {
    const e = await createWith(["gpu0"]);
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain('CDI device "gpu0" is not a fully qualified name');
  });
});

describe("image volumes (KEP-4639)", () => {
  let data: PushedImage;
  const volumeMounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(join(crib.state, "image-volumes"))).length;
  beforeAll(async () => {
    // Two layers, an executable, a symlink inside the image and one that climbs out.
    data = await pushImage(reg, "node/data:1", {
      layers: [
        [...busyboxLayer(), { type: "dir", path: "models/" }, { type: "file", path: "models/a.txt", data: "one\n" }],
        [{ type: "file", path: "models/b.txt", data: "two\n" }, { type: "symlink", path: "inside", target: "/models" }, { type: "symlink", path: "esc", target: "../../../../../etc" }],
      ],
    });
    await crib.client.call("ImageService", "PullImage", { image: { image: data.ref }, auth: null });
  });
  const vol = (path: string, sub = "", ref = data.ref) => ({ container_path: path, image: { image: ref }, image_sub_path: sub, readonly: true });

  async function createIn(podId: string, pod: ReturnType<typeof podConfig>, name: string, mounts: ReturnType<typeof vol>[], command = ["sleep", "100000"]) {
    return (await crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig(name, image.ref, command, { mounts }), sandbox_config: pod })).container_id;
  }

  test("the image is mounted read-only and noexec, whole or a sub path (also through a symlink inside it)", async () => {
    const lines = await runScript("imgvol", "cat /vol/models/a.txt /vol/models/b.txt; (touch /vol/x) 2>/dev/null || echo readonly; /vol/bin/busybox true 2>/dev/null || echo noexec; ls /m; ls /i", {
      mounts: [vol("/vol"), vol("/m", "models"), vol("/i", "inside")],
    });
    expect(lines).toEqual(["one", "two", "readonly", "noexec", "a.txt", "b.txt", "a.txt", "b.txt"]);
    expect(volumeMounts()).toBe(0); // released with the last container
  });

  test("shared: one mount for every container; RemoveImage is FAILED_PRECONDITION while one uses it", async () => {
    const pod = podConfig("imgvol-share");
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    const a = await createIn(podId, pod, "a", [vol("/vol")]);
    await createIn(podId, pod, "b", [vol("/m", "models")]);
    expect(volumeMounts()).toBe(1);
    const e = await criError(crib.client.call("ImageService", "RemoveImage", { image: { image: data.ref } }));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain("is in use by container");
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: a });
    expect(volumeMounts()).toBe(1); // b still uses it
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    expect(volumeMounts()).toBe(0);
    await crib.client.call("ImageService", "RemoveImage", { image: { image: data.ref } });
    await crib.client.call("ImageService", "PullImage", { image: { image: data.ref }, auth: null });
  });

  async function refused(sub: string, ref = data.ref) {
    const pod = podConfig("imgvol-bad");
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    try {
      return await criError(createIn(podId, pod, "c", [vol("/vol", sub, ref)]));
    } finally {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    }
  }

  test("image_sub_path may not escape the image: '..', a symlink out, an absolute path", async () => {
    for (const [sub, msg] of [["../etc", 'must be a relative path without ".."'], ["/models", 'must be a relative path without ".."'], ["esc", "leads out of"], ["esc/passwd", "leads out of"]] as const) {
      const e = await refused(sub);
      expect(e.code).toBe(status.INVALID_ARGUMENT);
      expect(e.details).toContain(msg);
    }
    expect(volumeMounts()).toBe(0);
  });

  test("a sub path that does not exist is INVALID_ARGUMENT; an image not pulled is NOT_FOUND", async () => {
    const missing = await refused("nope");
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    expect(missing.details).toContain('image_sub_path "nope" does not exist in the image');
    const absent = await refused("", `${reg.host}/node/never:1`);
    expect(absent.code).toBe(status.NOT_FOUND);
  });
});

describe("user namespaces (hostUsers: false, KEP-127)", () => {
  const HOST_BASE = 1_000_000 + (process.pid % 64) * 65536;
  const mapping = (hostId = HOST_BASE, containerId = 0, length = 65536) => ({ host_id: hostId, container_id: containerId, length });
  const userns = (extra: object = {}) => ({ mode: NamespaceMode.POD, uids: [mapping()], gids: [mapping()], ...extra });
  const usernsPod = (name: string, nsExtra: object = {}, usernsOpts: object = userns()) =>
    podConfig(name, { linux: { cgroup_parent: "", security_context: { namespace_options: { network: 0, pid: 1, ipc: 0, userns_options: usernsOpts, ...nsExtra } } } });
  let volume = "";
  beforeAll(() => {
    chmodSync(crib.dir, 0o711); // as /run is on a node: the state dir's parents must be searchable
    volume = tempDir("crib-userns-vol-");
    chmodSync(volume, 0o755);
    writeFileSync(join(volume, "owned-by-root"), "host file\n");
  });

  test("the container runs as root inside, as an unprivileged host uid outside; rootfs and volumes show the pod's ids", async () => {
    const pod = usernsPod("userns");
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    try {
      const script = "id -u; cat /proc/self/uid_map; ls -ln /bin/busybox; touch /new && ls -ln /new; ls -ln /vol/owned-by-root; echo hi > /vol/from-pod && echo vol-writable; ls /sys/class | head -1; sleep 100000";
      const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", {
        pod_sandbox_id: podId, config: containerConfig("c", image.ref, ["sh", "-c", script], { mounts: [{ container_path: "/vol", host_path: volume }] }), sandbox_config: pod,
      });
      await crib.client.call("RuntimeService", "StartContainer", { container_id: id });
      const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
      const lines = await (async () => {
        for (let i = 0; i < 200; i++) {
          const l = (await logLines(st.log_path)).map((x) => x[2]);
          if (l.length >= 7) return l;
          await Bun.sleep(50);
        }
        return (await logLines(st.log_path)).map((x) => x[2]);
      })();
      const cols = (l: string | undefined) => (l ?? "").trim().split(/\s+/);
      expect(lines[0]).toBe("0");
      expect(cols(lines[1])).toEqual(["0", String(HOST_BASE), "65536"]);
      expect(cols(lines[2]).slice(2, 4)).toEqual(["0", "0"]); // image file owned by root shows as root
      expect(cols(lines[3]).slice(2, 4)).toEqual(["0", "0"]);
      expect(cols(lines[4]).slice(2, 4)).toEqual(["0", "0"]); // host volume through an id-mapped mount
      expect(lines[5]).toBe("vol-writable");
      expect(lines[6]).not.toBe(""); // sysfs mounted: the pod's network namespace is the pod's user namespace's
      // From the host: the process's ids are the mapped, unprivileged ones.
      const pid = runcList(runcRoot(crib.state)).find((e) => e.id === id)?.pid ?? 0;
      expect(pid).toBeGreaterThan(0);
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1)).toEqual([String(HOST_BASE), String(HOST_BASE)]);
      expect(/^Gid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(HOST_BASE));
      // No file was chowned: the file the container made is stored as the mapped root.
      expect(statSync(join(crib.root, "containers", id, "upper", "new")).uid).toBe(HOST_BASE);
      // ContainerStatus reports the ids as the container sees them.
      expect(st.user?.linux).toEqual({ uid: 0n, gid: 0n, supplemental_groups: [0n] });
      // No staging mount of the volume stays on the host.
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(join(crib.state, "containers", id, "volumes"));
    } finally {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    }
    expect(readFileSync(join(volume, "from-pod"), "utf8")).toBe("hi\n");
  });

  test("pod sysctls, image volumes, CDI and CRI devices (bind-mounted: no mknod in a user namespace) work in a user namespace pod", async () => {
    const pod = usernsPod("userns-more");
    pod.linux!.sysctls = { "net.ipv4.ip_unprivileged_port_start": "42", "kernel.shmmni": "1234" };
    const dataImage = await pushImage(reg, "node/usernsdata:1", { layers: [[{ type: "dir", path: "d/" }, { type: "file", path: "d/x.txt", data: "in-image\n" }]] });
    await crib.client.call("ImageService", "PullImage", { image: { image: dataImage.ref }, auth: null });
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    try {
      const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", {
        pod_sandbox_id: podId,
        config: containerConfig("c", image.ref, ["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni /iv/d/x.txt; [ -c /dev/crib-null ] && echo cdi-null; head -c 3 /dev/myzero | wc -c"], {
          devices: [{ host_path: "/dev/zero", container_path: "/dev/myzero", permissions: "rw" }],
          mounts: [{ container_path: "/iv", image: { image: dataImage.ref }, image_sub_path: "", readonly: true }],
          CDI_devices: [{ name: "example.com/dev=nul" }],
        }),
        sandbox_config: pod,
      });
      await crib.client.call("RuntimeService", "StartContainer", { container_id: id });
      const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
      expect((await logLines(st.log_path)).map((l) => l[2])).toEqual(["42", "1234", "in-image", "cdi-null", "3"]);
    } finally {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
    }
  });

  async function runPodError(pod: ReturnType<typeof podConfig>) {
    return await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: pod }));
  }

  test("refused with INVALID_ARGUMENT naming the field: CONTAINER and TARGET modes, unmapped root, several mappings, host root", async () => {
    const field = "config.linux.security_context.namespace_options.userns_options";
    const cases: [object, string][] = [
      [userns({ mode: NamespaceMode.CONTAINER }), `${field}.mode CONTAINER is not supported`],
      [userns({ mode: NamespaceMode.TARGET }), `${field}.mode TARGET is not supported`],
      [userns({ uids: [mapping(HOST_BASE, 1)] }), `${field}.uids[0]: container id 0 (root) must be mapped`],
      [userns({ gids: [mapping(HOST_BASE, 0, 1000), mapping(HOST_BASE + 1000, 1000, 1000)] }), `${field}.gids: exactly one mapping is supported, got 2`],
      [userns({ uids: [mapping(0)] }), `${field}.uids[0]: host id 0 would map the host's root into the pod`],
    ];
    for (const [opts, msg] of cases) {
      const e = await runPodError(usernsPod("userns-bad", {}, opts));
      expect(e.code).toBe(status.INVALID_ARGUMENT);
      expect(e.details).toContain(msg);
    }
  });

  test("hostNetwork with a user namespace is INVALID_ARGUMENT (user_namespaces_host_network is not advertised)", async () => {
    const e = await runPodError(usernsPod("userns-hostnet", { network: NamespaceMode.NODE }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain("cannot use the node's network, IPC or PID namespace");
  });

  test("a handler without user namespace support is FAILED_PRECONDITION saying why", async () => {
    const e = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: usernsPod("userns-old"), runtime_handler: "old" }));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain('user namespaces are not available with runtime handler "old": runtime old does not support user namespaces');
  });
});
