// Pod networking through real CNI plugins (Debian's containernetworking-plugins
// in /usr/lib/cni) on the compiled daemon. Each describe block runs its own crib
// with its own confDir, bridge (cni-crib-XXXX), 10.a.b.0/24 subnet and
// host-local dataDir, all in temp dirs: the host's /etc/cni and /var/lib/cni
// are never read or written.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { ContainerState, NamespaceMode, PodSandboxState, type Out, type PodSandboxConfig } from "../../src/protocol/types.ts";
import { CniManager } from "../../src/pod/cni/manager.ts";
import { containerConfig, criError, logLines, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, startCrib, shutdownCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { freePort, startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import type { TarEntry } from "../helpers/tar.ts";

const CNI_BIN = "/usr/lib/cni";
const EXTRA_APPLETS = ["ping", "nc", "ip", "hostname"];

let reg: StartedRegistry;
let image: PushedImage;

/** One test network: its own dirs, bridge and subnet. */
interface TestNet {
  dir: string;
  confDir: string;
  binDir: string;
  dataDir: string;
  name: string;
  bridge: string;
  subnet: string;
  prefix: string;
}

function newNet(): TestNet {
  const dir = mkdtempSync(join(tmpdir(), "crib-cni-"));
  const tag = randomBytes(2).toString("hex");
  const a = 200 + (randomBytes(1)[0]! % 50);
  const b = randomBytes(1)[0]!;
  const net: TestNet = {
    dir, confDir: join(dir, "net.d"), binDir: join(dir, "bin"), dataDir: join(dir, "ipam"),
    name: `crib-test-${tag}`, bridge: `cni-crib-${tag}`, subnet: `10.${a}.${b}.0/24`, prefix: `10.${a}.${b}.`,
  };
  mkdirSync(net.confDir);
  mkdirSync(net.binDir);
  return net;
}

/** bridge + host-local (+ extra plugins), portmap last. */
function bridgeList(net: TestNet, extra: object[] = [], cniVersion = "1.0.0"): string {
  return JSON.stringify({
    cniVersion,
    name: net.name,
    plugins: [
      { type: "bridge", bridge: net.bridge, isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: net.subnet }]], dataDir: net.dataDir } },
      ...extra,
      // snat (the default) makes portmap mark 127.0.0.1 connections for masquerade and set route_localnet on the bridge.
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  });
}

/** Write a config file atomically (as an operator's tooling would). */
function writeConf(net: TestNet, name: string, text: string): void {
  const tmp = join(net.dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(net.confDir, name));
}

async function startNetCrib(net: TestNet): Promise<CribInstance> {
  const crib = await startCrib({ cni: { confDir: net.confDir, binDirs: [CNI_BIN, net.binDir] } });
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
  return crib;
}

function sh(cmd: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

/** IPs host-local holds in the test's dataDir. */
function allocated(net: TestNet): string[] {
  const d = join(net.dataDir, net.name);
  return existsSync(d) ? readdirSync(d).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)) : [];
}

/** Interfaces enslaved to the test bridge (the pods' host-side veths). */
function bridgePorts(net: TestNet): string[] {
  const r = sh(["ip", "-o", "link", "show", "master", net.bridge]);
  return r.code === 0 ? r.out.split("\n").filter(Boolean).map((l) => l.split(": ")[1]!.split("@")[0]!) : [];
}

function cacheFile(crib: CribInstance, podId: string): string {
  return join(crib.root, "cni", "cache", `${podId}.json`);
}

async function status_(crib: CribInstance) {
  const s = await crib.client.call("RuntimeService", "Status", { verbose: false });
  return Object.fromEntries(s.status!.conditions.map((c) => [c.type, c]));
}

async function runPod(crib: CribInstance, cfg: Out<PodSandboxConfig>): Promise<{ id: string; ip: string; additional: string[] }> {
  const { pod_sandbox_id: id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: cfg });
  const st = await crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: id, verbose: false });
  return { id, ip: st.status?.network?.ip ?? "", additional: (st.status?.network?.additional_ips ?? []).map((x) => x.ip) };
}

async function output(crib: CribInstance, id: string): Promise<{ exit: number; text: string }> {
  const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s, 60_000);
  return { exit: st.exit_code, text: (await logLines(st.log_path)).map((l) => l[2]).join("\n") };
}

/** Remove every pod, stop crib and its monitor, delete the bridge and temp dirs. */
async function teardown(crib: CribInstance | undefined, net: TestNet): Promise<void> {
  await shutdownCrib(crib);
  sh(["ip", "link", "del", net.bridge]);
  rmSync(net.dir, { recursive: true, force: true });
}

beforeAll(async () => {
  reg = await startRegistry();
  const base = busyboxLayer().filter((e) => !EXTRA_APPLETS.some((a) => e.path === `bin/${a}`));
  const applets: TarEntry[] = EXTRA_APPLETS.map((a) => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" }));
  image = await pushImage(reg, "cni/busybox:1", { layers: [[...base, ...applets]] });
});

afterAll(async () => {
  await reg?.stop();
});

describe("a bridge network", () => {
  const net = newNet();
  let crib: CribInstance | undefined;

  beforeAll(async () => {
    crib = await startNetCrib(net);
  });
  afterAll(async () => {
    await teardown(crib, net);
  });

  test("NetworkReady turns true when a usable config appears, without a restart", async () => {
    const c = crib!;
    let ready = (await status_(c)).NetworkReady!;
    expect(ready.status).toBe(false);
    expect(ready.reason).toBe("NetworkPluginNotReady");
    expect(ready.message).toContain(net.confDir);

    // The first file by name is the network; its missing plugin keeps the node not ready.
    writeConf(net, "10-first.conflist", bridgeList(net, [{ type: "crib-absent-plugin" }]));
    writeConf(net, "20-second.conflist", bridgeList({ ...net, name: "second" }));
    ready = (await status_(c)).NetworkReady!;
    expect(ready.status).toBe(false);
    expect(ready.message).toContain('needs plugin "crib-absent-plugin"');
    expect(ready.message).toContain("10-first.conflist");

    writeConf(net, "10-first.conflist", bridgeList(net));
    ready = (await status_(c)).NetworkReady!;
    expect(ready.status).toBe(true);
    expect(ready.reason).toBe("");
    const used = c.logs().split("\n").filter((l) => l.includes('"using CNI network"'));
    expect(used.at(-1)).toContain(`"network":"${net.name}"`);
    expect(used.at(-1)).toContain(join(net.confDir, "10-first.conflist"));
    rmSync(join(net.confDir, "20-second.conflist"));
  });


  test("two pods on the bridge reach each other; their IPs come from the ADD result", async () => {
    const c = crib!;
    const aCfg = pod("web-a");
    const a = await runPod(c, aCfg);
    expect(a.ip.startsWith(net.prefix)).toBe(true);
    expect(a.additional).toEqual([]);
    expect(allocated(net)).toContain(a.ip);
    await startIn(c, a.id, aCfg, containerConfig("httpd", image.ref, ["sh", "-c", "mkdir -p /tmp/www && echo hello-from-a > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]));

    const bCfg = pod("client-b");
    const b = await runPod(c, bCfg);
    expect(b.ip.startsWith(net.prefix)).toBe(true);
    expect(b.ip).not.toBe(a.ip);
    const fetcher = await startIn(c, b.id, bCfg, containerConfig("wget", image.ref, [
      "sh", "-c",
      `ip -4 addr show eth0; ping -c1 -W5 ${a.ip} >/dev/null && echo ping-ok; for i in $(seq 1 100); do wget -qO- http://${a.ip}:8080/ && exit 0; sleep 0.1; done; exit 1`,
    ]));
    const out = await output(c, fetcher);
    expect(out.text).toContain(`inet ${b.ip}/24`);
    expect(out.text).toContain("ping-ok");
    expect(out.text).toContain("hello-from-a");
    expect(out.exit).toBe(0);

    for (const id of [a.id, b.id]) await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
    expect(allocated(net)).toEqual([]);
    expect(bridgePorts(net)).toEqual([]);
  }, 120_000);

  test("a hostPort is reachable on 127.0.0.1 through portmap, and its rules go with the pod", async () => {
    const c = crib!;
    const hostPort = await freePort();
    const cfg = pod("hostport", { port_mappings: [{ protocol: 0, container_port: 8080, host_port: hostPort, host_ip: "" }, { protocol: 0, container_port: 9090, host_port: 0, host_ip: "" }] });
    const p = await runPod(c, cfg);
    await startIn(c, p.id, cfg, containerConfig("httpd", image.ref, ["sh", "-c", "mkdir -p /tmp/www && echo via-hostport > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]));
    const rules = () => sh(["iptables", "-t", "nat", "-S"]).out.split("\n").filter((l) => l.includes(p.id));
    expect(rules().join("\n")).toContain(`--dports ${hostPort}`);

    let body = "";
    for (let i = 0; i < 100 && body === ""; i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${hostPort}/`, { signal: AbortSignal.timeout(5000) });
        body = await r.text();
      } catch {
        await Bun.sleep(100); // httpd not listening yet
      }
    }
    expect(body).toBe("via-hostport\n");

    await c.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id });
    expect(rules()).toEqual([]);
    expect(existsSync(cacheFile(c, p.id))).toBe(false);
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
  }, 120_000);

  test("resolv.conf carries the pod's DNS config with networking on", async () => {
    const c = crib!;
    const cfg = pod("dns", { dns_config: { servers: ["10.96.0.10"], searches: ["default.svc.cluster.local", "svc.cluster.local"], options: ["ndots:5"] } });
    const p = await runPod(c, cfg);
    expect(p.ip.startsWith(net.prefix)).toBe(true);
    const id = await startIn(c, p.id, cfg, containerConfig("cat", image.ref, ["cat", "/etc/resolv.conf"]));
    const out = await output(c, id);
    expect(out.text.split("\n")).toEqual(["search default.svc.cluster.local svc.cluster.local", "nameserver 10.96.0.10", "options ndots:5"]);
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
  }, 120_000);

  test("UpdateRuntimeConfig takes the pod CIDR (dual stack) and refuses a malformed one", async () => {
    const c = crib!;
    await c.client.call("RuntimeService", "UpdateRuntimeConfig", { runtime_config: { network_config: { pod_cidr: "10.244.0.0/24,fd00:10:244::/64" } } });
    expect(c.logs()).toContain('"podCidr":"10.244.0.0/24,fd00:10:244::/64"');
    await c.client.call("RuntimeService", "UpdateRuntimeConfig", { runtime_config: null });
    const err = await criError(c.client.call("RuntimeService", "UpdateRuntimeConfig", { runtime_config: { network_config: { pod_cidr: "10.244.0.0/33" } } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("10.244.0.0/33");
  });

  test("a hostNetwork pod gets no CNI", async () => {
    const c = crib!;
    const before = allocated(net);
    const cfg = pod("hostnet", { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } } } });
    const p = await runPod(c, cfg);
    expect(p.ip).toBe("");
    expect(existsSync(cacheFile(c, p.id))).toBe(false);
    expect(allocated(net)).toEqual(before);
    expect(c.logs().split("\n").some((l) => l.includes(p.id) && l.includes('"component":"cni"'))).toBe(false);
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
  });

  test("CHECK passes on a healthy attachment and names the plugin when it is broken", async () => {
    const c = crib!;
    const p = await runPod(c, pod("checked"));
    const mgr = new CniManager({ confDir: net.confDir, binDirs: [CNI_BIN], cacheDir: join(c.root, "cni", "cache") });
    expect(await mgr.check(p.id)).toBe(true);
    const netns = join(c.state, "pods", p.id, "ns", "net");
    expect(sh(["nsenter", `--net=${netns}`, "ip", "link", "del", "eth0"]).code).toBe(0);
    const err = await mgr.check(p.id).then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toContain('CNI CHECK of pod default/checked');
    expect(err?.message).toContain('plugin "bridge"');
    expect(err?.message).toContain(`network "${net.name}"`);
    // DEL still works with the interface gone, and releases the IP.
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
    expect(allocated(net)).not.toContain(p.ip);
  });

  test("a 0.4.0 list and a single .conf file work the same", async () => {
    const c = crib!;
    writeConf(net, "05-old.conf", JSON.stringify({ cniVersion: "0.4.0", name: `${net.name}-old`, type: "bridge", bridge: net.bridge, isGateway: true, ipam: { type: "host-local", ranges: [[{ subnet: net.subnet }]], dataDir: net.dataDir } }));
    try {
      expect((await status_(c)).NetworkReady!.status).toBe(true);
      const p = await runPod(c, pod("old-conf"));
      expect(p.ip.startsWith(net.prefix)).toBe(true);
      const cached = JSON.parse(readFileSync(cacheFile(c, p.id), "utf8")) as { network: { name: string }; result: { cniVersion: string } };
      expect(cached.network.name).toBe(`${net.name}-old`);
      expect(cached.result.cniVersion).toBe("0.4.0");
      // The config is removed before the pod: DEL uses the cached one.
      rmSync(join(net.confDir, "05-old.conf"));
      await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
      expect(readdirSync(join(net.dataDir, `${net.name}-old`)).filter((n) => n.startsWith(net.prefix))).toEqual([]);
    } finally {
      rmSync(join(net.confDir, "05-old.conf"), { force: true });
    }
  });
});

describe("a daemon restart", () => {
  const net = newNet();
  let crib: CribInstance | undefined;

  beforeAll(async () => {
    writeConf(net, "10-net.conflist", bridgeList(net));
    crib = await startNetCrib(net);
  });
  afterAll(async () => {
    await teardown(crib, net);
  });

  test("after kill -9 and a restart, StopPodSandbox releases the IP and removes the veth", async () => {
    const c = crib!;
    const cfg = pod("survivor");
    const p = await runPod(c, cfg);
    await startIn(c, p.id, cfg, containerConfig("sleep", image.ref, ["sleep", "1000"]));
    const cached = JSON.parse(readFileSync(cacheFile(c, p.id), "utf8")) as { result: { interfaces: { name: string; sandbox?: string }[] } };
    const veth = cached.result.interfaces.find((i) => i.name !== net.bridge && !i.sandbox)!.name;
    expect(bridgePorts(net)).toEqual([veth]);
    expect(allocated(net)).toEqual([p.ip]);

    // A second pod whose netns disappears while crib is down (as after a reboot).
    const gone = await runPod(c, pod("netns-gone"));
    expect(allocated(net).sort()).toEqual([p.ip, gone.ip].sort());

    await c.kill();
    const netns = join(c.state, "pods", gone.id, "ns", "net");
    expect(sh(["umount", netns]).code).toBe(0);
    crib = await startCrib({}, c);
    const c2 = crib;

    await c2.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id });
    expect(allocated(net)).toEqual([gone.ip]);
    expect(sh(["ip", "link", "show", veth]).code).not.toBe(0);
    expect(existsSync(cacheFile(c2, p.id))).toBe(false);

    await c2.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: gone.id });
    expect(allocated(net)).toEqual([]);
    expect(bridgePorts(net)).toEqual([]);
    // Idempotent.
    await c2.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id });
    for (const id of [p.id, gone.id]) await c2.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
  }, 120_000);
});

describe("StopPodSandbox releases the network at once, as containerd does", () => {
  const net = newNet();
  let crib: CribInstance | undefined;

  beforeAll(async () => {
    writeConf(net, "10-net.conflist", bridgeList(net));
    crib = await startNetCrib(net);
  });
  afterAll(async () => {
    await teardown(crib, net);
  });

  /** Lines of /proc/self/mountinfo under the pod's state dir (its pinned namespaces and /dev/shm). */
  const podMounts = (c: CribInstance, podId: string) => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(join(c.state, "pods", podId)));

  async function expectReleased(c: CribInstance, podId: string): Promise<void> {
    expect(allocated(net)).toEqual([]);
    expect(bridgePorts(net)).toEqual([]);
    expect(existsSync(cacheFile(c, podId))).toBe(false);
    expect(podMounts(c, podId)).toEqual([]);
    const st = await c.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: podId, verbose: false });
    expect(st.status?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    expect(st.status?.network?.ip ?? "").toBe("");
    expect(st.status?.network?.additional_ips ?? []).toEqual([]);
    const listed = await c.client.call("RuntimeService", "ListPodSandbox", { filter: { id: podId, state: null, label_selector: {} } });
    expect(listed.items.map((x) => x.state)).toEqual([PodSandboxState.SANDBOX_NOTREADY]);
  }

  test("CNI DEL, netns and /dev/shm unmounted at StopPodSandbox; a second stop and the removes leak nothing", async () => {
    const c = crib!;
    const cfg = pod("released");
    const p = await runPod(c, cfg);
    const cid = await startIn(c, p.id, cfg, containerConfig("sleep", image.ref, ["sleep", "100000"]));
    expect(allocated(net)).toEqual([p.ip]);
    expect(bridgePorts(net)).toHaveLength(1);
    expect(podMounts(c, p.id).length).toBeGreaterThanOrEqual(2); // netns (and uts, ipc) pins, /dev/shm

    await c.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id });
    await expectReleased(c, p.id);
    expect((await c.client.call("RuntimeService", "ContainerStatus", { container_id: cid, verbose: false })).status?.state).toBe(ContainerState.CONTAINER_EXITED);

    await c.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id });
    await expectReleased(c, p.id);
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
    expect(podMounts(c, p.id)).toEqual([]);
    expect(existsSync(join(c.state, "pods", p.id))).toBe(false);
  }, 120_000);

  test("a daemon killed right after it marked the pod stopped: the restart finishes the teardown", async () => {
    const c = crib!;
    const cfg = pod("half-stopped");
    const p = await runPod(c, cfg);
    const cid = await startIn(c, p.id, cfg, containerConfig("sleep", image.ref, ["sleep", "100000"]));
    expect(allocated(net)).toEqual([p.ip]);

    // StopPodSandbox's first committed step is the NOTREADY state; everything after it
    // (containers, CNI DEL, unpinning) is what a kill -9 there leaves undone.
    await c.kill();
    const db = new Database(join(c.root, "crib.db"));
    db.query("UPDATE pods SET state = ? WHERE id = ?").run(PodSandboxState.SANDBOX_NOTREADY, p.id);
    db.close();
    crib = await startCrib({}, c);
    const c2 = crib;
    // The restart finishes such stops in the background and says when it is done.
    while (!c2.logs().includes('"stopped pod sandboxes released after start-up"')) {
      if (c2.proc.exitCode !== null) throw new Error(`crib exited:\n${c2.logs()}`);
      await Bun.sleep(20);
    }

    await expectReleased(c2, p.id);
    expect((await c2.client.call("RuntimeService", "ContainerStatus", { container_id: cid, verbose: false })).status?.state).toBe(ContainerState.CONTAINER_EXITED);
    await c2.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: p.id });
    await c2.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
    expect(podMounts(c2, p.id)).toEqual([]);
  }, 120_000);
});

describe("broken network configs", () => {
  const net = newNet();
  let crib: CribInstance | undefined;

  beforeAll(async () => {
    crib = await startNetCrib(net);
  });
  afterAll(async () => {
    await teardown(crib, net);
  });

  function nothingLeft(c: CribInstance): void {
    expect(allocated(net)).toEqual([]);
    expect(bridgePorts(net)).toEqual([]);
    const pods = join(c.state, "pods");
    expect(existsSync(pods) ? readdirSync(pods) : []).toEqual([]);
    const cache = join(c.root, "cni", "cache");
    expect(existsSync(cache) ? readdirSync(cache) : []).toEqual([]);
  }

  test("a missing plugin binary: NetworkReady false, and RunPodSandbox says which plugin", async () => {
    const c = crib!;
    writeConf(net, "10-net.conflist", bridgeList(net, [{ type: "crib-missing-plugin" }]));
    const ready = (await status_(c)).NetworkReady!;
    expect(ready.status).toBe(false);
    expect(ready.message).toContain('"crib-missing-plugin"');
    const err = await criError(c.client.call("RuntimeService", "RunPodSandbox", { config: pod("missing") }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain("default/missing");
    expect(err.details).toContain('needs plugin "crib-missing-plugin"');
    expect(err.details).toContain(net.name);
    expect((await c.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items).toEqual([]);
    nothingLeft(c);
  });

  test("a plugin that fails: its error, the plugin, network and pod in the message; ADD rolled back", async () => {
    const c = crib!;
    const plugin = join(net.binDir, "crib-failing");
    writeFileSync(plugin, [
      "#!/bin/sh",
      "cat >/dev/null",
      `if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0","code":101,"msg":"no room at the inn","details":"test plugin refuses every ADD"}'; exit 1; fi`,
      "exit 0",
    ].join("\n"));
    chmodSync(plugin, 0o755);
    // After bridge: the bridge's IP and veth must be rolled back.
    writeConf(net, "10-net.conflist", bridgeList(net, [{ type: "crib-failing" }]));
    expect((await status_(c)).NetworkReady!.status).toBe(true);
    const err = await criError(c.client.call("RuntimeService", "RunPodSandbox", { config: pod("failing") }));
    expect(err.code).toBe(status.INTERNAL);
    expect(err.details).toContain("CNI ADD of pod default/failing");
    expect(err.details).toContain('plugin "crib-failing"');
    expect(err.details).toContain(`network "${net.name}"`);
    expect(err.details).toContain("no room at the inn: test plugin refuses every ADD (code 101)");
    expect((await c.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items).toEqual([]);
    nothingLeft(c);
  });

  test("an unparsable first file is skipped for the next one; none parsable is not ready", async () => {
    const c = crib!;
    writeConf(net, "00-broken.conflist", "{ not json");
    writeConf(net, "10-net.conflist", bridgeList(net));
    expect((await status_(c)).NetworkReady!.status).toBe(true);
    rmSync(join(net.confDir, "10-net.conflist"));
    const ready = (await status_(c)).NetworkReady!;
    expect(ready.status).toBe(false);
    expect(ready.message).toContain("00-broken.conflist: not valid JSON");
  });
});

const logDirs: string[] = [];

/** podConfig, with its log dir removed at the end. */
function pod(name: string, extra: Out<PodSandboxConfig> = {}): Out<PodSandboxConfig> {
  const cfg = podConfig(name, extra);
  logDirs.push(cfg.log_directory!);
  return cfg;
}

afterAll(() => {
  for (const d of logDirs) rmSync(d, { recursive: true, force: true });
});

/** Create and start a container in an existing pod. */
async function startIn(crib: CribInstance, podId: string, podCfg: Out<PodSandboxConfig>, c: ReturnType<typeof containerConfig>): Promise<string> {
  const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: c, sandbox_config: podCfg });
  await crib.client.call("RuntimeService", "StartContainer", { container_id: id });
  return id;
}
