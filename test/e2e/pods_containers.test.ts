// Pods and containers on the compiled daemon, under real runc and the monitor.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { ContainerState, PodSandboxState } from "../../src/protocol/types.ts";
import { containerConfig, criError, logLines, podConfig, runContainer, statusOf, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, runCrib, startCrib } from "../helpers/daemon.ts";
import { tempDir } from "../helpers/tmp.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import type { TarEntry } from "../helpers/tar.ts";

let reg: StartedRegistry;
let crib: CribInstance;
let image: PushedImage;
let userImage: PushedImage;

const EXTRA_APPLETS = ["unshare", "cat", "id", "touch", "sleep", "yes", "seq", "hostname", "tr"];


function monitorPid(c: CribInstance): number {
  return Number(readFileSync(join(c.state, "monitor", "monitor.pid"), "utf8").trim());
}

beforeAll(async () => {
  reg = await startRegistry();
  // Hardlinks only reach files of their own layer, so the extra applets join busybox's.
  const base = busyboxLayer().filter((e) => !EXTRA_APPLETS.some((a) => e.path === `bin/${a}`));
  const applets: TarEntry[] = EXTRA_APPLETS.map((a) => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" }));
  image = await pushImage(reg, "pods/busybox:1", { layers: [[...base, ...applets]] });
  userImage = await pushImage(reg, "pods/user:1", { layers: [busyboxLayer()], config: { User: "app" } });
  // "broken": a RuntimeClass whose OCI runtime always fails (errors must name it).
  crib = await startCrib({ runtime: { handlers: { runc: { path: "runc" }, broken: { path: "/bin/false" } } } });
  for (const ref of [image.ref, userImage.ref]) await crib.client.call("ImageService", "PullImage", { image: { image: ref }, auth: null });
});

afterAll(async () => {
  if (crib) {
    // Remove every pod (and so every container) so no mount, cgroup or process is left.
    for (const p of (await crib.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items) {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
    }
    const mon = existsSync(join(crib.state, "monitor", "monitor.pid")) ? monitorPid(crib) : 0;
    await crib.stop();
    if (mon) process.kill(mon, "SIGTERM");
    crib.cleanup();
  }
  await reg?.stop();
});

describe("pod sandboxes", () => {
  test("UpdatePodSandboxResources: accepted for a pod, NOT_FOUND for none, INVALID_ARGUMENT for a bad value", async () => {
    const { pod_sandbox_id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("resize") });
    const resources = { cpu_period: 100000n, cpu_quota: 50000n, cpu_shares: 512n, memory_limit_in_bytes: 256n * 1024n * 1024n, cpuset_cpus: "0", cpuset_mems: "" };
    await crib.client.call("RuntimeService", "UpdatePodSandboxResources", { pod_sandbox_id, overhead: null, resources });
    const missing = await criError(crib.client.call("RuntimeService", "UpdatePodSandboxResources", { pod_sandbox_id: "f".repeat(64), overhead: null, resources }));
    expect(missing.code).toBe(status.NOT_FOUND);
    const bad = await criError(crib.client.call("RuntimeService", "UpdatePodSandboxResources", { pod_sandbox_id, overhead: null, resources: { ...resources, cpuset_cpus: "zero" } }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.message).toContain("cpuset_cpus");
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id });
  });

  test("run, status, list, stop and remove (both idempotent)", async () => {
    const cfg = podConfig("lifecycle");
    const { pod_sandbox_id: id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: cfg });
    const st = await crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
    expect(st.status?.state).toBe(PodSandboxState.SANDBOX_READY);
    expect(st.status?.metadata?.name).toBe("lifecycle");
    expect(st.status?.created_at).toBeGreaterThan(0n);
    const ns = (JSON.parse(st.info.info!) as { namespaces: Record<string, string> }).namespaces;
    expect(Object.keys(ns).sort()).toEqual(["ipc", "net", "uts"]);
    for (const p of Object.values(ns)) expect(existsSync(p)).toBe(true);

    const byLabel = await crib.client.call("RuntimeService", "ListPodSandbox", { filter: { label_selector: { app: "lifecycle" } } });
    expect(byLabel.items.map((p) => p.id)).toEqual([id]);

    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: id });
    await crib.client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: id });
    const notReady = await crib.client.call("RuntimeService", "ListPodSandbox", { filter: { id, state: { state: PodSandboxState.SANDBOX_NOTREADY } } });
    expect(notReady.items).toHaveLength(1);
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id });
    for (const p of Object.values(ns)) expect(existsSync(p)).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(id);
    const gone = await criError(crib.client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: id, verbose: false }));
    expect(gone.code).toBe(status.NOT_FOUND);
  });

  test("bad pod configs get precise errors", async () => {
    const noMeta = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: { hostname: "x" } }));
    expect(noMeta.code).toBe(status.INVALID_ARGUMENT);
    const badSysctl = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("sysctl", { linux: { sysctls: { "kernel.hostname": "x" } } }) }));
    expect(badSysctl.code).toBe(status.INVALID_ARGUMENT);
    expect(badSysctl.details).toContain("kernel.hostname");
    // A namespaced sysctl with a value the kernel refuses (found by the CRI fuzzer: it was INTERNAL).
    const badValue = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("sysctlv", { linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "not a number" } } }) }));
    expect(badValue.code).toBe(status.INVALID_ARGUMENT);
    expect(badValue.details).toContain('sysctl "net.ipv4.ip_unprivileged_port_start": the kernel refuses the value "not a number" (EINVAL)');
    expect((await crib.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items.map((p) => p.metadata?.name)).not.toContain("sysctlv");
    const badHandler = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: podConfig(), runtime_handler: "nope" }));
    expect(badHandler.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("containers", () => {
  test("a RuntimeClass whose OCI runtime fails: CreateContainer names that runtime, and nothing is left", async () => {
    const pod = podConfig("broken-rt");
    const { pod_sandbox_id } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod, runtime_handler: "broken" });
    const err = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id, config: containerConfig("c", image.ref, ["true"]), sandbox_config: pod }));
    expect(err.message).toMatch(/false create of container [0-9a-f]{64} failed/);
    const { containers } = await crib.client.call("RuntimeService", "ListContainers", { filter: { pod_sandbox_id, id: "", state: null, label_selector: {} } });
    expect(containers).toEqual([]);
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id });
  });

  test("exit code 0 with both streams and a partial line in the CRI log", async () => {
    const pod = podConfig();
    const { id } = await runContainer(crib.client, pod, containerConfig("streams", image.ref, ["sh", "-c", "echo out; echo err >&2; printf partial"]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(st.exit_code).toBe(0);
    expect(st.reason).toBe("Completed");
    expect(st.started_at).toBeGreaterThanOrEqual(st.created_at);
    expect(st.finished_at).toBeGreaterThanOrEqual(st.started_at);
    expect(st.image_id).toBe(image.configDigest);
    const lines = await logLines(st.log_path);
    expect(lines).toContainEqual(["stdout", "F", "out"]);
    expect(lines).toContainEqual(["stderr", "F", "err"]);
    expect(lines.some(([s, , t]) => s === "stdout" && t === "partial")).toBe(true);
  });

  test("a non-zero exit is reported with reason Error", async () => {
    const { id } = await runContainer(crib.client, podConfig(), containerConfig("exit3", image.ref, ["sh", "-c", "exit 3"]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(st.exit_code).toBe(3);
    expect(st.reason).toBe("Error");
  });

  test("ExecSync: stdout and stderr apart, exit code, timeout", async () => {
    const { id } = await runContainer(crib.client, podConfig(), containerConfig("exec", image.ref, ["sleep", "1000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const r = await crib.client.call("RuntimeService", "ExecSync", { container_id: id, cmd: ["sh", "-c", "echo hi; echo bad >&2; exit 7"], timeout: 10n });
    expect(r.stdout.toString()).toBe("hi\n");
    expect(r.stderr.toString()).toBe("bad\n");
    expect(r.exit_code).toBe(7);
    const slow = await criError(crib.client.call("RuntimeService", "ExecSync", { container_id: id, cmd: ["sleep", "30"], timeout: 1n }));
    expect(slow.code).toBe(status.DEADLINE_EXCEEDED);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
  });

  test("StopContainer: the stop signal, then SIGKILL after the timeout", async () => {
    const { id } = await runContainer(crib.client, podConfig(), containerConfig("stubborn", image.ref, ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    await Bun.sleep(200); // let the trap be set
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 1n });
    const st = await statusOf(crib.client, id);
    expect(st?.state).toBe(ContainerState.CONTAINER_EXITED);
    expect(st?.exit_code).toBe(137);
    // A container that handles SIGTERM stops on it, well before the timeout.
    // (A PID 1 without a handler ignores SIGTERM, so the container installs one.)
    const { id: polite } = await runContainer(crib.client, podConfig(), containerConfig("polite", image.ref, ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"]));
    await waitStatus(crib.client, polite, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    await Bun.sleep(200);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: polite, timeout: 30n }, { timeoutMs: 20_000 });
    expect((await statusOf(crib.client, polite))?.exit_code).toBe(42);
  });

  test("run-as user and group, and the image's user by name", async () => {
    const { id } = await runContainer(
      crib.client,
      podConfig(),
      containerConfig("ids", image.ref, ["id"], { linux: { security_context: { run_as_user: { value: 1000n }, run_as_group: { value: 2000n }, supplemental_groups: [3000n] } } }),
    );
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    const out = (await logLines(st.log_path)).map((l) => l[2]).join("\n");
    expect(out).toMatch(/uid=1000\(app\) gid=2000\(extra\)/);
    expect(out).toContain("3000");

    const { id: byName } = await runContainer(crib.client, podConfig(), containerConfig("imageuser", userImage.ref, ["id"]));
    const st2 = await waitStatus(crib.client, byName, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect((await logLines(st2.log_path)).map((l) => l[2]).join("\n")).toMatch(/uid=1000\(app\) gid=1000\(app\)/);
  });

  test("read-only rootfs, capabilities, RuntimeDefault seccomp", async () => {
    const ro = await runContainer(crib.client, podConfig(), containerConfig("ro", image.ref, ["sh", "-c", "touch /x && echo wrote || echo refused"], { linux: { security_context: { readonly_rootfs: true } } }));
    const s1 = await waitStatus(crib.client, ro.id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect((await logLines(s1.log_path)).map((l) => l[2])).toContain("refused");

    const caps = await runContainer(
      crib.client,
      podConfig(),
      containerConfig("caps", image.ref, ["sh", "-c", "grep CapEff /proc/self/status"], { linux: { security_context: { capabilities: { drop_capabilities: ["ALL"], add_capabilities: ["NET_ADMIN"] } } } }),
    );
    const s2 = await waitStatus(crib.client, caps.id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    const capEff = (await logLines(s2.log_path)).map((l) => l[2]).join("");
    expect(capEff).toMatch(/CapEff:\s+0000000000001000/); // CAP_NET_ADMIN is bit 12

    const sec = await runContainer(
      crib.client,
      podConfig(),
      containerConfig("seccomp", image.ref, ["sh", "-c", "unshare -U true && echo allowed || echo refused"], { linux: { security_context: { seccomp: { profile_type: 0 } } } }),
    );
    const s3 = await waitStatus(crib.client, sec.id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect((await logLines(s3.log_path)).map((l) => l[2])).toContain("refused");
  });

  test("resource limits land in the cgroup; UpdateContainerResources changes them", async () => {
    const limit = 64n * 1024n * 1024n;
    const { id } = await runContainer(
      crib.client,
      podConfig(),
      containerConfig("limits", image.ref, ["sleep", "1000"], { linux: { resources: { memory_limit_in_bytes: limit, cpu_quota: 50_000n, cpu_period: 100_000n, cpu_shares: 512n } } }),
    );
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const cg = `/sys/fs/cgroup/memory/crib/crib-${id}`;
    expect(readFileSync(join(cg, "memory.limit_in_bytes"), "utf8").trim()).toBe(String(limit));
    expect(readFileSync(`/sys/fs/cgroup/cpu/crib/crib-${id}/cpu.cfs_quota_us`, "utf8").trim()).toBe("50000");
    await crib.client.call("RuntimeService", "UpdateContainerResources", { container_id: id, linux: { memory_limit_in_bytes: 2n * limit } });
    expect(readFileSync(join(cg, "memory.limit_in_bytes"), "utf8").trim()).toBe(String(2n * limit));
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
  });

  test("pod hostname, DNS config and sysctls reach the container", async () => {
    const pod = podConfig("dnspod", {
      hostname: "my-host",
      dns_config: { servers: ["10.0.0.10"], searches: ["default.svc.cluster.local"], options: ["ndots:5"] },
      linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "80" }, security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
    });
    const { id } = await runContainer(crib.client, pod, containerConfig("dns", image.ref, ["sh", "-c", "hostname; cat /etc/resolv.conf; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    const out = (await logLines(st.log_path)).map((l) => l[2]);
    expect(out).toContain("my-host");
    expect(out).toContain("nameserver 10.0.0.10");
    expect(out).toContain("search default.svc.cluster.local");
    expect(out).toContain("options ndots:5");
    expect(out).toContain("80");
  });

  test("ReopenContainerLog: after the kubelet renames the log, lines go to a new file", async () => {
    const { id } = await runContainer(crib.client, podConfig(), containerConfig("rotate", image.ref, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done"]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
    await Bun.sleep(300);
    renameSync(st.log_path, `${st.log_path}.1`);
    await crib.client.call("RuntimeService", "ReopenContainerLog", { container_id: id });
    await Bun.sleep(300);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    const before = (await logLines(`${st.log_path}.1`)).map((l) => Number(l[2].slice(4)));
    const after = (await logLines(st.log_path)).map((l) => Number(l[2].slice(4)));
    expect(after.length).toBeGreaterThan(0);
    // No line lost or repeated across the rotation.
    expect([...before, ...after]).toEqual(Array.from({ length: before.length + after.length }, (_, i) => i + 1));
  });

  test("ListContainers filters; RemoveContainer is idempotent; removal unmounts", async () => {
    const pod = podConfig();
    const { podId, id } = await runContainer(crib.client, pod, containerConfig("listed", image.ref, ["sleep", "1000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const byPod = await crib.client.call("RuntimeService", "ListContainers", { filter: { pod_sandbox_id: podId } });
    expect(byPod.containers.map((c) => c.id)).toEqual([id]);
    const running = await crib.client.call("RuntimeService", "ListContainers", { filter: { state: { state: ContainerState.CONTAINER_RUNNING }, label_selector: { c: "listed" } } });
    expect(running.containers.map((c) => c.id)).toEqual([id]);
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: id });
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: id });
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(id);
    expect((await criError(crib.client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: false }))).code).toBe(status.NOT_FOUND);
    // An image in use cannot be removed; once unused it can.
    const { id: user } = await runContainer(crib.client, podConfig(), containerConfig("holder", userImage.ref, ["sleep", "1000"]));
    const busy = await criError(crib.client.call("ImageService", "RemoveImage", { image: { image: userImage.ref } }));
    expect(busy.code).toBe(status.FAILED_PRECONDITION);
    await crib.client.call("RuntimeService", "RemoveContainer", { container_id: user });
  });

  test("a create retried after the client gave up gets the finished container, not 'name reserved'", async () => {
    const pod = podConfig("retry");
    const first = await criError(crib.client.call("RuntimeService", "RunPodSandbox", { config: pod }, { timeoutMs: 1 }));
    expect(first.code).toBe(status.DEADLINE_EXCEEDED);
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    const cfg = containerConfig("retried", image.ref, ["sleep", "1000"]);
    const c1 = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: cfg, sandbox_config: pod }, { timeoutMs: 1 }));
    expect(c1.code).toBe(status.DEADLINE_EXCEEDED);
    const { container_id: id } = await crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: cfg, sandbox_config: pod });
    expect((await crib.client.call("RuntimeService", "ListContainers", { filter: { pod_sandbox_id: podId } })).containers.map((c) => c.id)).toEqual([id]);
    // Once claimed, the same name is taken.
    const again = await criError(crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: cfg, sandbox_config: pod }));
    expect(again.code).toBe(status.ALREADY_EXISTS);
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });
});

describe("crib ctl for pods and containers", () => {
  test("runp, create, start, ps, logs, inspect, stop, rm, stopp, rmp with crictl-style config files", async () => {
    const dir = tempDir("crib-ctl-");
    const pod = podConfig("ctlpod");
    const podFile = join(dir, "pod.json");
    const ctrFile = join(dir, "container.yaml");
    await Bun.write(podFile, JSON.stringify(pod));
    await Bun.write(ctrFile, `metadata: { name: hello }\nimage: { image: "${image.ref}" }\ncommand: [sh, -c, "echo hello from ctl; echo oops >&2; sleep 1000"]\nlog_path: hello.log\n`);
    const ep = ["ctl", "-r", `unix://${crib.socket}`];
    const podId = (await runCrib([...ep, "runp", podFile])).stdout.trim();
    expect(podId).toMatch(/^[0-9a-f]{64}$/);
    const created = await runCrib([...ep, "create", podId, ctrFile, podFile]);
    expect(created.stderr).toBe("");
    const id = created.stdout.trim();
    expect((await runCrib([...ep, "start", id])).code).toBe(0);
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    expect((await runCrib([...ep, "pods"])).stdout).toContain("ctlpod");
    const ps = await runCrib([...ep, "ps", "--pod", podId]);
    expect(ps.stdout).toMatch(/CONTAINER\s+IMAGE\s+CREATED\s+STATE\s+NAME/);
    expect(ps.stdout).toContain("RUNNING");
    await Bun.sleep(200);
    const logs = await runCrib([...ep, "logs", id]);
    expect(logs.stdout).toBe("hello from ctl\n");
    expect(logs.stderr).toBe("oops\n");
    const insp = JSON.parse((await runCrib([...ep, "inspect", id])).stdout) as { status: { metadata: { name: string } } };
    expect(insp.status.metadata.name).toBe("hello");
    expect((await runCrib([...ep, "stop", "-t", "0", id])).code).toBe(0);
    expect((await runCrib([...ep, "ps", "-a", "-q", "--pod", podId])).stdout.trim()).toBe(id);
    expect((await runCrib([...ep, "rm", id])).code).toBe(0);
    expect((await runCrib([...ep, "stopp", podId])).stdout).toContain(`Stopped sandbox ${podId}`);
    expect((await runCrib([...ep, "rmp", podId])).stdout).toContain(`Removed sandbox ${podId}`);
    expect((await runCrib([...ep, "pods", "-q"])).stdout).not.toContain(podId);
  });
});

describe("PID namespaces", () => {
  test("a pod-wide PID namespace: containers see each other and crib's pause as PID 1", async () => {
    const pod = podConfig("sharedpid", { linux: { security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } } });
    const shared = { linux: { security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } } } as const;
    const { podId, id: sleeper } = await runContainer(crib.client, pod, containerConfig("sleeper", image.ref, ["sleep", "1000"], shared));
    await waitStatus(crib.client, sleeper, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const { container_id: looker } = await crib.client.call("RuntimeService", "CreateContainer", {
      pod_sandbox_id: podId, sandbox_config: pod,
      config: containerConfig("looker", image.ref, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; for p in /proc/[0-9]*; do cat $p/cmdline | tr '\\0' ' '; echo; done"], shared),
    });
    await crib.client.call("RuntimeService", "StartContainer", { container_id: looker });
    const st = await waitStatus(crib.client, looker, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    const out = (await logLines(st.log_path)).map((l) => l[2]);
    expect(out[0]).toContain("pause");
    expect(out.some((l) => l.startsWith("sleep 1000"))).toBe(true);
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });

  test("TARGET mode (ephemeral containers) joins the target container's PID namespace", async () => {
    const pod = podConfig("target");
    const { podId, id: app } = await runContainer(crib.client, pod, containerConfig("app", image.ref, ["sleep", "1000"]));
    await waitStatus(crib.client, app, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const { container_id: debug } = await crib.client.call("RuntimeService", "CreateContainer", {
      pod_sandbox_id: podId, sandbox_config: pod,
      config: containerConfig("debugger", image.ref, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"], { linux: { security_context: { namespace_options: { network: 0, pid: 3, ipc: 0, target_id: app } } } }),
    });
    await crib.client.call("RuntimeService", "StartContainer", { container_id: debug });
    const st = await waitStatus(crib.client, debug, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect((await logLines(st.log_path)).map((l) => l[2]).join("")).toContain("sleep 1000");
    await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: podId });
  });
});

describe("crashes", () => {
  test("kill -9 of the daemon: containers keep running and logging; the new daemon reports them", async () => {
    const c = await startCrib();
    try {
      await c.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
      const { id } = await runContainer(c.client, podConfig(), containerConfig("survivor", image.ref, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.1; done"]));
      const { id: quitter } = await runContainer(c.client, podConfig(), containerConfig("quitter", image.ref, ["sh", "-c", "sleep 1; exit 4"]));
      const st = await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
      await c.kill();
      await Bun.sleep(1500); // the quitter exits while no daemon runs
      const again = await startCrib({}, c);
      try {
        expect((await statusOf(again.client, id))?.state).toBe(ContainerState.CONTAINER_RUNNING);
        const q = await statusOf(again.client, quitter);
        expect(q?.state).toBe(ContainerState.CONTAINER_EXITED);
        expect(q?.exit_code).toBe(4);
        const ticks = (await logLines(st.log_path)).map((l) => Number(l[2].slice(4)));
        expect(ticks.length).toBeGreaterThan(10);
        expect(ticks).toEqual(Array.from({ length: ticks.length }, (_, i) => i + 1));
        await again.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
        for (const p of (await again.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items) {
          await again.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
        }
      } finally {
        const mon = monitorPid(again);
        await again.stop();
        process.kill(mon, "SIGTERM");
      }
    } finally {
      if (c.proc.exitCode === null) await c.kill();
      c.cleanup();
    }
  });

  test("start-up removes a pod and a container a crash left unrecorded, mounts included", async () => {
    const c = await startCrib();
    await c.stop();
    const fakePod = "a".repeat(64);
    const fakeCtr = "b".repeat(64);
    const podShm = join(c.state, "pods", fakePod, "shm");
    const rootfs = join(c.state, "containers", fakeCtr, "rootfs");
    for (const d of [podShm, rootfs, join(c.root, "containers", fakeCtr, "upper")]) Bun.spawnSync(["mkdir", "-p", d]);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "orphan", podShm]).exitCode).toBe(0);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "orphan", rootfs]).exitCode).toBe(0);
    const again = await startCrib({}, c);
    try {
      expect(again.logs()).toContain("removing a pod sandbox left by a crash");
      expect(again.logs()).toContain("removing a container left by a crash");
      expect(existsSync(join(c.state, "pods", fakePod))).toBe(false);
      expect(existsSync(join(c.state, "containers", fakeCtr))).toBe(false);
      expect(existsSync(join(c.root, "containers", fakeCtr))).toBe(false);
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(c.dir);
    } finally {
      await again.stop();
      again.cleanup();
    }
  });

  test("upgrading crib replaces the monitor in place: same pid, new build, containers keep running", async () => {
    // An "older" crib: the same sources stamped with another commit.
    const t = tempDir("crib-upgrade-");
    const older = join(t, "crib-older");
    const build = Bun.spawnSync([process.execPath, join(import.meta.dir, "../../build/compile.ts"), "--outfile", older, "--commit", "older0000000"]);
    expect(build.exitCode).toBe(0);
    const c = await startCrib({}, undefined, older);
    try {
      await c.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
      const { id } = await runContainer(c.client, podConfig(), containerConfig("upgraded", image.ref, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done"]));
      const st = await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
      const monBefore = monitorPid(c);
      await c.stop();
      const monitorLog = () => readFileSync(join(c.state, "monitor", "monitor.log"), "utf8");
      const newer = await startCrib({}, c);
      try {
        expect(newer.logs()).toContain("upgrading the monitor to this build");
        expect(monitorPid(newer)).toBe(monBefore); // re-exec keeps the pid, so containers keep their parent
        expect((await statusOf(newer.client, id))?.state).toBe(ContainerState.CONTAINER_RUNNING);
        await Bun.sleep(300);
        await newer.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
        const after = await statusOf(newer.client, id);
        expect(after?.exit_code).toBe(137); // the upgraded monitor still sees the exact exit
        const ticks = (await logLines(st.log_path)).map((l) => Number(l[2].slice(4)));
        expect(ticks).toEqual(Array.from({ length: ticks.length }, (_, i) => i + 1));
        expect(newer.logs()).toContain("older0000000"); // upgraded from the older build
        expect(monitorLog()).toContain(`"generation":1`);
        for (const p of (await newer.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items) {
          await newer.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id });
        }
      } finally {
        const mon = monitorPid(newer);
        await newer.stop();
        process.kill(mon, "SIGTERM");
      }
    } finally {
      if (c.proc.exitCode === null) await c.kill();
      c.cleanup();
    }
  });

  test("kill -9 of the monitor: no container dies, a new monitor takes over, no line lost", async () => {
    const { id } = await runContainer(crib.client, podConfig(), containerConfig("monitored", image.ref, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done"]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
    await Bun.sleep(300);
    const old = monitorPid(crib);
    process.kill(old, "SIGKILL");
    await Bun.sleep(1500);
    // The daemon has started a new monitor; the container is still running.
    expect(monitorPid(crib)).not.toBe(old);
    expect((await statusOf(crib.client, id))?.state).toBe(ContainerState.CONTAINER_RUNNING);
    await Bun.sleep(500);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    const ticks = (await logLines(st.log_path)).map((l) => Number(l[2].slice(4)));
    expect(ticks.length).toBeGreaterThan(20);
    expect(ticks).toEqual(Array.from({ length: ticks.length }, (_, i) => i + 1));
  });
});
