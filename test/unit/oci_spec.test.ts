// OCI runtime spec generation: every rule of src/container/spec against real CRI
// messages (encoded and decoded through the embedded proto, so they have the exact
// decoded shape the daemon sees) and real files in temp dirs.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CribError } from "../../src/errors.ts";
import { setLogSink } from "../../src/log/logger.ts";
import { criType, decodeMessage, encodeMessage } from "../helpers/protobuf_reference.ts";
import type { ContainerConfig, Mount, NamespaceOption, PodSandboxConfig } from "../../src/protocol/types.ts";
import { MountPropagation, NamespaceMode, SecurityProfile_ProfileType } from "../../src/protocol/types.ts";
import { ANNOTATIONS, buildContainerSpec, type ContainerSpecInput } from "../../src/container/spec/build.ts";
import { computeCapabilities, DEFAULT_CAPABILITIES, ALL_CAPABILITIES, normalizeCapability, parseCapabilityMask, readPermittedCapabilities } from "../../src/container/spec/capabilities.ts";
import { criMountToOci, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, planMounts } from "../../src/container/spec/mounts.ts";
import { planNamespaces } from "../../src/container/spec/namespaces.ts";
import type { OciSeccomp, OciSpec } from "../../src/container/spec/oci_types.ts";
import { DEFAULT_PATH, processArgs, processCwd, processEnv } from "../../src/container/spec/process.ts";
import { normalizeSysctlName, planHugepageLimits, planOomScoreAdj, planResources, planSysctls } from "../../src/container/spec/resources.ts";
import { HugetlbProbe, hugetlbMountedV1 } from "../../src/container/cgroup_controllers.ts";
import { compileSeccompProfile, seccompChoice } from "../../src/container/spec/seccomp.ts";
import { DEFAULT_SECCOMP_PROFILE } from "../../src/container/spec/seccomp_default.ts";
import { MAX_ID_FILE_BYTES, MAX_ID_FILE_LINES, resolveUser, secureJoin, type ResolvedUser } from "../../src/container/spec/user.ts";
import { resolveDevices } from "../../src/container/spec/devices.ts";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crib-oci-spec-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
function tmp(name: string): string {
  const p = join(dir, `${name}-${++seq}`);
  mkdirSync(p, { recursive: true });
  return p;
}

/** A CRI message in the decoded form (every field present, int64 as bigint). */
function decoded<T>(typeName: string, value: object): T {
  const type = criType(`runtime.v1.${typeName}`);
  return decodeMessage<T>(type, encodeMessage(type, value));
}
const containerConfig = (v: object = {}) =>
  decoded<ContainerConfig>("ContainerConfig", { metadata: { name: "app" }, image: { image: "busybox:latest" }, ...v });
const sandboxConfig = (v: object = {}) =>
  decoded<PodSandboxConfig>("PodSandboxConfig", { metadata: { name: "pod", namespace: "default", uid: "uid-1" }, hostname: "pod-host", ...v });
const mount = (v: object) => decoded<Mount>("Mount", v);
const nsOptions = (v: object) => decoded<NamespaceOption>("NamespaceOption", v);

async function thrown(p: Promise<unknown> | (() => unknown)): Promise<CribError> {
  try {
    if (typeof p === "function") p();
    else await p;
  } catch (err) {
    if (err instanceof CribError) return err;
    throw err;
  }
  throw new Error("expected a CribError");
}

const ROOT_USER: ResolvedUser = { uid: 0, gid: 0, additionalGids: [0] };

function input(over: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    containerId: "c1",
    sandboxId: "s1",
    config: containerConfig({ command: ["/bin/sh"] }),
    sandbox: sandboxConfig(),
    image: { user: "", env: [], entrypoint: [], cmd: [], workingDir: "", stopSignal: "" },
    rootfs: "/run/crib/containers/c1/rootfs",
    namespaces: { network: "/run/crib/ns/net/s1", ipc: "/run/crib/ns/ipc/s1", uts: "/run/crib/ns/uts/s1" },
    cgroupsPath: "/crib/s1/c1",
    user: ROOT_USER,
    hostname: "pod-host",
    sandboxFiles: {},
    runtimeCanLowerOomScore: true,
    availableCapabilities: ALL_CAPABILITIES,
    arch: "x64",
    kernelRelease: "6.1.0",
    ...over,
  };
}

const syscallsAllowed = (s: OciSeccomp) =>
  new Set((s.syscalls ?? []).filter((r) => r.action === "SCMP_ACT_ALLOW" && r.args === undefined).flatMap((r) => r.names));

describe("process args", () => {
  const image = { entrypoint: ["/entry"], cmd: ["cmd-a", "cmd-b"] };
  const cases: { name: string; command: string[]; args: string[]; image: { entrypoint: string[]; cmd: string[] }; want: string[] }[] = [
    { name: "image entrypoint + cmd", command: [], args: [], image, want: ["/entry", "cmd-a", "cmd-b"] },
    { name: "args replace cmd only", command: [], args: ["x"], image, want: ["/entry", "x"] },
    { name: "command drops entrypoint and cmd", command: ["/bin/sh"], args: [], image, want: ["/bin/sh"] },
    { name: "command + args", command: ["/bin/sh", "-c"], args: ["echo hi"], image, want: ["/bin/sh", "-c", "echo hi"] },
    { name: "cmd only image", command: [], args: [], image: { entrypoint: [], cmd: ["/bin/sh"] }, want: ["/bin/sh"] },
    { name: "args with no entrypoint", command: [], args: ["/bin/true"], image: { entrypoint: [], cmd: ["/bin/sh"] }, want: ["/bin/true"] },
    { name: 'entrypoint [""] is none', command: [], args: [], image: { entrypoint: [""], cmd: ["/bin/sh"] }, want: ["/bin/sh"] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      expect(processArgs(c.command, c.args, c.image)).toEqual(c.want);
    });
  }
  test("nothing to run is invalid_argument", async () => {
    const err = await thrown(() => processArgs([], [], { entrypoint: [], cmd: [] }));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("no command");
  });
});

describe("process env and cwd", () => {
  test("image env, then CRI envs overriding by key; default PATH", () => {
    const env = processEnv({
      imageEnv: ["A=image", "B=image"],
      criEnvs: [{ key: "B", value: "cri" }, { key: "C", value: "x=y" }],
      hostname: "h1",
      tty: false,
    });
    expect(env).toEqual([`PATH=${DEFAULT_PATH}`, "HOSTNAME=h1", "A=image", "B=cri", "C=x=y"]);
  });
  test("the image's PATH replaces the default, the CRI's replaces the image's", () => {
    expect(processEnv({ imageEnv: ["PATH=/img"], criEnvs: [], tty: false })).toEqual(["PATH=/img"]);
    expect(processEnv({ imageEnv: ["PATH=/img"], criEnvs: [{ key: "PATH", value: "/cri" }], tty: false })).toEqual(["PATH=/cri"]);
  });
  test("an image entry without '=' unsets; tty adds TERM", () => {
    expect(processEnv({ imageEnv: ["PATH"], criEnvs: [], tty: true })).toEqual(["TERM=xterm"]);
  });
  test("a bad CRI env name is refused", async () => {
    expect((await thrown(() => processEnv({ imageEnv: [], criEnvs: [{ key: "", value: "v" }], tty: false }))).kind).toBe("invalid_argument");
    expect((await thrown(() => processEnv({ imageEnv: [], criEnvs: [{ key: "A=B", value: "v" }], tty: false }))).kind).toBe("invalid_argument");
  });
  test("working dir: CRI, then image, then /", () => {
    expect(processCwd("/cri", "/img")).toBe("/cri");
    expect(processCwd("", "/img")).toBe("/img");
    expect(processCwd("", "")).toBe("/");
    expect(processCwd("rel/dir", "")).toBe("/rel/dir");
  });
});

describe("capabilities", () => {
  const set = (r: { capabilities: { bounding: string[] } }) => new Set(r.capabilities.bounding);
  test("the default set", () => {
    const r = computeCapabilities({ privileged: false, add: [], drop: [] });
    expect(set(r)).toEqual(new Set(DEFAULT_CAPABILITIES));
    expect(r.capabilities.effective).toEqual(r.capabilities.bounding);
    expect(r.capabilities.permitted).toEqual(r.capabilities.bounding);
    expect(r.capabilities.inheritable).toEqual([]);
    expect(set(r).has("CAP_SYS_ADMIN")).toBe(false);
  });
  test("names with or without CAP_, any case", () => {
    expect(normalizeCapability("net_admin")).toBe("CAP_NET_ADMIN");
    expect(normalizeCapability("CAP_NET_ADMIN")).toBe("CAP_NET_ADMIN");
    expect(normalizeCapability("all")).toBe("ALL");
    const r = computeCapabilities({ privileged: false, add: ["NET_ADMIN", "cap_sys_time"], drop: ["CAP_CHOWN", "kill"] });
    expect(set(r).has("CAP_NET_ADMIN")).toBe(true);
    expect(set(r).has("CAP_SYS_TIME")).toBe(true);
    expect(set(r).has("CAP_CHOWN")).toBe(false);
    expect(set(r).has("CAP_KILL")).toBe(false);
  });
  test("ALL: add ALL + drop X, drop ALL + add X", () => {
    const all = computeCapabilities({ privileged: false, add: ["ALL"], drop: ["NET_RAW"] });
    expect(set(all).size).toBe(ALL_CAPABILITIES.length - 1);
    expect(set(all).has("CAP_NET_RAW")).toBe(false);
    const none = computeCapabilities({ privileged: false, add: ["NET_BIND_SERVICE"], drop: ["ALL"] });
    expect([...set(none)]).toEqual(["CAP_NET_BIND_SERVICE"]);
    const empty = computeCapabilities({ privileged: false, add: [], drop: ["all"] });
    expect(empty.capabilities.bounding).toEqual([]);
  });
  test("privileged = every capability, add/drop ignored", () => {
    const r = computeCapabilities({ privileged: true, add: [], drop: ["ALL"] });
    expect(r.capabilities.bounding).toEqual([...ALL_CAPABILITIES]);
  });
  test("ambient capabilities are raised in every set, inheritable included", () => {
    const r = computeCapabilities({ privileged: false, add: [], drop: ["ALL"], ambient: ["NET_BIND_SERVICE"] });
    expect(r.capabilities.ambient).toEqual(["CAP_NET_BIND_SERVICE"]);
    expect(r.capabilities.inheritable).toEqual(["CAP_NET_BIND_SERVICE"]);
    expect(r.capabilities.permitted).toEqual(["CAP_NET_BIND_SERVICE"]);
  });
  test("an unknown capability is invalid_argument naming it", async () => {
    const err = await thrown(() => computeCapabilities({ privileged: false, add: ["FLY"], drop: [] }));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("FLY");
  });
  test("capabilities the runtime lacks are left out and reported", () => {
    // This VM's mask: CAP_SYS_RESOURCE (bit 24) is missing.
    const available = parseCapabilityMask("000001fffeffffff");
    expect(available).not.toContain("CAP_SYS_RESOURCE");
    expect(available).toContain("CAP_CHECKPOINT_RESTORE");
    const r = computeCapabilities({ privileged: true, add: [], drop: [], available });
    expect(r.capabilities.bounding).not.toContain("CAP_SYS_RESOURCE");
    expect(r.unavailable).toEqual(["CAP_SYS_RESOURCE"]);
  });
});

describe("seccomp", () => {
  const target = { capabilities: [...DEFAULT_CAPABILITIES], arch: "x64", kernelRelease: "6.1.0" };
  test("RuntimeDefault: deny with EPERM, x86 arches, no namespace or keyring syscalls", () => {
    const s = compileSeccompProfile(DEFAULT_SECCOMP_PROFILE, target);
    expect(s.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(s.defaultErrnoRet).toBe(1);
    expect(s.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    const allowed = syscallsAllowed(s);
    for (const name of ["read", "write", "execve", "openat", "arch_prctl", "ptrace"]) expect(allowed.has(name)).toBe(true);
    for (const name of ["unshare", "mount", "setns", "keyctl", "add_key", "request_key", "bpf", "reboot", "io_uring_setup", "clone3"]) {
      expect(allowed.has(name)).toBe(false);
    }
    // clone only without CLONE_NEW* flags; clone3 answers ENOSYS.
    const clone = (s.syscalls ?? []).filter((r) => r.names.includes("clone"));
    expect(clone).toEqual([{ names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] }]);
    expect((s.syscalls ?? []).find((r) => r.names.includes("clone3"))).toEqual({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 });
  });
  test("RuntimeDefault with CAP_SYS_ADMIN allows unshare/mount/clone3", () => {
    const s = compileSeccompProfile(DEFAULT_SECCOMP_PROFILE, { ...target, capabilities: [...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"] });
    const allowed = syscallsAllowed(s);
    for (const name of ["unshare", "mount", "setns", "clone", "clone3"]) expect(allowed.has(name)).toBe(true);
    expect(allowed.has("keyctl")).toBe(false);
  });
  test("RuntimeDefault on arm64", () => {
    const s = compileSeccompProfile(DEFAULT_SECCOMP_PROFILE, { ...target, arch: "arm64" });
    expect(s.architectures).toEqual(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    const allowed = syscallsAllowed(s);
    expect(allowed.has("set_tls")).toBe(true);
    expect(allowed.has("arch_prctl")).toBe(false);
  });
  test("minKernel: ptrace only on 4.8 and later", () => {
    expect(syscallsAllowed(compileSeccompProfile(DEFAULT_SECCOMP_PROFILE, { ...target, kernelRelease: "4.4.0" })).has("ptrace")).toBe(false);
    expect(syscallsAllowed(compileSeccompProfile(DEFAULT_SECCOMP_PROFILE, { ...target, kernelRelease: "4.19.0-foo" })).has("ptrace")).toBe(true);
  });
  test("choices: message, deprecated path, default", async () => {
    expect(seccompChoice(null, "")).toEqual({ kind: "unconfined" });
    expect(seccompChoice(null, "runtime/default")).toEqual({ kind: "runtime-default" });
    expect(seccompChoice(null, "docker/default")).toEqual({ kind: "runtime-default" });
    expect(seccompChoice(null, "localhost//p.json")).toEqual({ kind: "localhost", ref: "/p.json" });
    expect(seccompChoice({ profile_type: SecurityProfile_ProfileType.Unconfined, localhost_ref: "" }, "runtime/default")).toEqual({ kind: "unconfined" });
    expect((await thrown(() => seccompChoice(null, "bogus"))).kind).toBe("invalid_argument");
    expect((await thrown(() => seccompChoice({ profile_type: SecurityProfile_ProfileType.Localhost, localhost_ref: "" }, ""))).kind).toBe("invalid_argument");
  });

  const withSeccomp = (seccomp: object | undefined, extra: object = {}) =>
    input({ config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { ...(seccomp ? { seccomp } : {}), ...extra } } }) });

  test("spec: RuntimeDefault, Unconfined, unset", async () => {
    expect((await buildContainerSpec(withSeccomp({ profile_type: 0 }))).linux.seccomp?.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect((await buildContainerSpec(withSeccomp({ profile_type: 1 }))).linux.seccomp).toBeUndefined();
    expect((await buildContainerSpec(withSeccomp(undefined))).linux.seccomp).toBeUndefined();
    expect((await buildContainerSpec(withSeccomp(undefined, { seccomp_profile_path: "runtime/default" }))).linux.seccomp?.defaultAction).toBe("SCMP_ACT_ERRNO");
  });
  test("spec: privileged runs unconfined", async () => {
    const spec = await buildContainerSpec({
      ...withSeccomp({ profile_type: 0 }, { privileged: true }),
      sandbox: sandboxConfig({ linux: { security_context: { privileged: true } } }),
    });
    expect(spec.linux.seccomp).toBeUndefined();
  });
  test("spec: Localhost profile, absolute and relative to the profile root, Docker format", async () => {
    const root = tmp("seccomp");
    const profile = {
      defaultAction: "SCMP_ACT_ALLOW",
      archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86"] }],
      syscalls: [
        { names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 },
        { name: "chmod", action: "SCMP_ACT_ERRNO" },
        { names: ["mount"], action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_ADMIN"] } },
      ],
    };
    writeFileSync(join(root, "p.json"), JSON.stringify(profile));
    const abs = await buildContainerSpec(withSeccomp({ profile_type: 2, localhost_ref: join(root, "p.json") }));
    expect(abs.linux.seccomp).toEqual({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      syscalls: [
        { names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 },
        { names: ["chmod"], action: "SCMP_ACT_ERRNO" },
      ],
    });
    const rel = await buildContainerSpec({ ...withSeccomp({ profile_type: 2, localhost_ref: "p.json" }), seccompProfileRoot: root });
    expect(rel.linux.seccomp).toEqual(abs.linux.seccomp as OciSeccomp);
  });
  test("spec: Localhost errors name the file", async () => {
    const root = tmp("seccomp-bad");
    writeFileSync(join(root, "bad.json"), "{not json");
    writeFileSync(join(root, "act.json"), JSON.stringify({ defaultAction: "SCMP_ACT_EXPLODE" }));
    writeFileSync(join(root, "names.json"), JSON.stringify({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: "read", action: "SCMP_ACT_ALLOW" }] }));
    writeFileSync(join(root, "args.json"), JSON.stringify({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", args: [{ index: 9, value: 1, op: "SCMP_CMP_EQ" }] }] }));
    writeFileSync(join(root, "array.json"), "[]");
    for (const [ref, fragment] of [
      [join(root, "missing.json"), "does not exist"],
      [join(root, "bad.json"), "not valid JSON"],
      [join(root, "act.json"), "SCMP_ACT_EXPLODE"],
      [join(root, "names.json"), "names is not a list"],
      [join(root, "args.json"), "index 9"],
      [join(root, "array.json"), "not a JSON object"],
      [root, "not a regular file"],
    ] as const) {
      const err = await thrown(buildContainerSpec(withSeccomp({ profile_type: 2, localhost_ref: ref })));
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(fragment);
    }
    const rel = await thrown(buildContainerSpec(withSeccomp({ profile_type: 2, localhost_ref: "p.json" })));
    expect(rel.message).toContain("relative");
    const climb = await thrown(buildContainerSpec({ ...withSeccomp({ profile_type: 2, localhost_ref: "../etc/x.json" }), seccompProfileRoot: root }));
    expect(climb.message).toContain("climbs out");
  });
});

describe("namespaces", () => {
  const paths = { network: "/ns/net", ipc: "/ns/ipc", uts: "/ns/uts", pid: "/ns/pid" };
  test("POD modes join the pod's pinned namespaces; CONTAINER pid is new", () => {
    const plan = planNamespaces(nsOptions({ network: NamespaceMode.POD, ipc: NamespaceMode.POD, pid: NamespaceMode.CONTAINER }), paths);
    expect(plan.namespaces).toEqual([
      { type: "mount" },
      { type: "network", path: "/ns/net" },
      { type: "ipc", path: "/ns/ipc" },
      { type: "uts", path: "/ns/uts" },
      { type: "pid" },
    ]);
    expect(plan.hostNetwork).toBe(false);
  });
  test("POD without paths = new namespaces (a pod without pinned ones)", () => {
    const plan = planNamespaces(nsOptions({}), {});
    expect(plan.namespaces).toEqual([{ type: "mount" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "pid" }]);
  });
  test("NODE: no entry; host network takes the host UTS", () => {
    const plan = planNamespaces(nsOptions({ network: NamespaceMode.NODE, ipc: NamespaceMode.NODE, pid: NamespaceMode.NODE }), paths);
    expect(plan.namespaces).toEqual([{ type: "mount" }]);
    expect(plan).toMatchObject({ hostNetwork: true, hostIpc: true, hostPid: true, hostUts: true });
  });
  test("POD pid joins the pod's; TARGET joins the target's or fails", async () => {
    expect(planNamespaces(nsOptions({ pid: NamespaceMode.POD }), paths).namespaces).toContainEqual({ type: "pid", path: "/ns/pid" });
    expect(planNamespaces(nsOptions({ pid: NamespaceMode.TARGET, target_id: "t" }), paths).namespaces).toContainEqual({ type: "pid", path: "/ns/pid" });
    const err = await thrown(() => planNamespaces(nsOptions({ pid: NamespaceMode.TARGET, target_id: "t" }), {}));
    expect(err.kind).toBe("invalid_argument");
    expect((await thrown(() => planNamespaces(nsOptions({ network: NamespaceMode.TARGET }), paths))).kind).toBe("invalid_argument");
  });
  test("cgroup namespace on request; the pod's user namespace by path, with its mapping", async () => {
    expect(planNamespaces(null, {}, true).namespaces).toContainEqual({ type: "cgroup" });
    const range = [{ host_id: 100000, container_id: 0, length: 65536 }];
    const pod = nsOptions({ userns_options: { mode: NamespaceMode.POD, uids: range, gids: range } });
    const err = await thrown(() => planNamespaces(pod, {}));
    expect([err.kind, err.message]).toEqual(["invalid_argument", expect.stringContaining("but the pod sandbox has none")]);
    const plan = planNamespaces(pod, { user: "/run/p/ns/user" });
    expect(plan.namespaces).toContainEqual({ type: "user", path: "/run/p/ns/user" });
    expect(plan.userNamespace?.uids).toEqual({ hostId: 100000, containerId: 0, size: 65536 });
    expect((await thrown(() => planNamespaces(nsOptions({ userns_options: { mode: NamespaceMode.NODE } }), { user: "/u" }))).kind).toBe("invalid_argument");
    expect(planNamespaces(nsOptions({ userns_options: { mode: NamespaceMode.NODE } }), {}).namespaces.length).toBe(5);
  });
  test("spec: the hostname only with a UTS namespace", async () => {
    const hostNet = input({
      config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } }),
    });
    expect((await buildContainerSpec(hostNet)).hostname).toBeUndefined();
    expect((await buildContainerSpec(input())).hostname).toBe("pod-host");
  });
  test("spec: the pod's namespace options apply when the container has none", async () => {
    const spec = await buildContainerSpec(
      input({ sandbox: sandboxConfig({ linux: { security_context: { namespace_options: { network: NamespaceMode.NODE, pid: NamespaceMode.NODE } } } }) }),
    );
    expect(spec.linux.namespaces.map((n) => n.type)).toEqual(["mount", "ipc"]);
  });
});

describe("sysctls", () => {
  const podNs = { hostNetwork: false, hostIpc: false };
  test("namespaced sysctls pass, slash form normalised", () => {
    expect(planSysctls({ "kernel.shm_rmid_forced": "1", "kernel.msgmax": "9", "kernel.sem": "1 2 3 4", "fs.mqueue.msg_max": "20", "net/ipv4/ip_forward": "1" }, podNs)).toEqual({
      "kernel.shm_rmid_forced": "1",
      "kernel.msgmax": "9",
      "kernel.sem": "1 2 3 4",
      "fs.mqueue.msg_max": "20",
      "net.ipv4.ip_forward": "1",
    });
    expect(normalizeSysctlName("net/ipv4/conf/eth0.1/forwarding")).toBe("net.ipv4.conf.eth0/1.forwarding");
  });
  test("node-wide sysctls are refused by name", async () => {
    for (const name of ["kernel.hostname", "vm.overcommit_memory", "kernel.panic", "fs.file-max"]) {
      const err = await thrown(() => planSysctls({ [name]: "1" }, podNs));
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(name);
    }
  });
  test("net.* with host network and IPC ones with host IPC are refused", async () => {
    expect((await thrown(() => planSysctls({ "net.core.somaxconn": "1024" }, { hostNetwork: true, hostIpc: false }))).message).toContain("net.core.somaxconn");
    expect((await thrown(() => planSysctls({ "kernel.shmmax": "1" }, { hostNetwork: false, hostIpc: true }))).message).toContain("kernel.shmmax");
    expect(planSysctls({ "kernel.shmmax": "1" }, { hostNetwork: true, hostIpc: false })).toEqual({ "kernel.shmmax": "1" });
  });
  test("malformed names are refused", async () => {
    for (const name of ["net..x", "net./x", "net", "net.ipv4.x\n"]) {
      expect((await thrown(() => planSysctls({ [name]: "1" }, podNs))).kind).toBe("invalid_argument");
    }
  });
  test("spec: the pod's sysctls", async () => {
    const spec = await buildContainerSpec(input({ sandbox: sandboxConfig({ linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "0" } } }) }));
    expect(spec.linux.sysctl).toEqual({ "net.ipv4.ip_unprivileged_port_start": "0" });
    const err = await thrown(buildContainerSpec(input({ sandbox: sandboxConfig({ linux: { sysctls: { "kernel.panic": "1" } } }) })));
    expect(err.message).toContain("kernel.panic");
  });
});

describe("mounts", () => {
  const dests = (ms: { destination: string }[]) => ms.map((m) => m.destination);
  test("the standard mounts; /sys and cgroups read-only unless privileged", () => {
    const plan = planMounts({ criMounts: [], privileged: false, readonlyRootfs: false, sandboxFiles: {} });
    expect(dests(plan.mounts)).toEqual(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]);
    expect(plan.mounts.find((m) => m.destination === "/sys")?.options).toContain("ro");
    expect(plan.mounts.find((m) => m.destination === "/sys/fs/cgroup")?.options).toContain("ro");
    const priv = planMounts({ criMounts: [], privileged: true, readonlyRootfs: false, sandboxFiles: {} });
    expect(priv.mounts.find((m) => m.destination === "/sys")?.options).not.toContain("ro");
    expect(priv.mounts.find((m) => m.destination === "/sys/fs/cgroup")?.options).not.toContain("ro");
    expect(plan.rootfsPropagation).toBeUndefined();
  });
  test("CRI mounts: bind, propagation, readonly, recursive read-only", async () => {
    expect(criMountToOci(mount({ container_path: "/data/", host_path: "/srv/data", readonly: true }))).toEqual({
      destination: "/data", type: "bind", source: "/srv/data", options: ["rbind", "rprivate", "ro"],
    });
    expect(criMountToOci(mount({ container_path: "/a", host_path: "/b", propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER })).options).toEqual(["rbind", "rslave", "rw"]);
    expect(criMountToOci(mount({ container_path: "/a", host_path: "/b", propagation: MountPropagation.PROPAGATION_BIDIRECTIONAL })).options).toEqual(["rbind", "rshared", "rw"]);
    expect(criMountToOci(mount({ container_path: "/a", host_path: "/b", readonly: true, recursive_read_only: true })).options).toEqual(["rbind", "rprivate", "ro", "rro"]);
    expect((await thrown(() => criMountToOci(mount({ container_path: "/a", host_path: "/b", recursive_read_only: true })))).kind).toBe("invalid_argument");
    expect((await thrown(() => criMountToOci(mount({ container_path: "rel", host_path: "/b" })))).kind).toBe("invalid_argument");
    expect((await thrown(() => criMountToOci(mount({ container_path: "/a", host_path: "" })))).kind).toBe("invalid_argument");
    // An image volume: the caller's mounted source, always ro/noexec; without one it is a bug.
    expect(criMountToOci(mount({ container_path: "/a", image: { image: "x" } }), undefined, "/run/iv/x")).toEqual({
      destination: "/a", type: "bind", source: "/run/iv/x", options: ["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"],
    });
    expect((await thrown(() => criMountToOci(mount({ container_path: "/a", host_path: "/b", image: { image: "x" } })))).kind).toBe("internal");
    // recursive_read_only where the handler cannot: FAILED_PRECONDITION with the reason.
    const noRro = await thrown(() => criMountToOci(mount({ container_path: "/a", host_path: "/b", readonly: true, recursive_read_only: true }), { supported: false, reason: "old runtime" }));
    expect([noRro.kind, noRro.message]).toEqual(["failed_precondition", "mount /a: recursive_read_only is not available with this runtime handler: old runtime"]);
    // selinux_relabel is accepted and ignored.
    expect(criMountToOci(mount({ container_path: "/a", host_path: "/b", selinux_relabel: true })).options).toEqual(["rbind", "rprivate", "rw"]);
  });
  test("rootfs propagation follows the strongest CRI propagation", () => {
    const m = (p: number) => mount({ container_path: `/m${p}`, host_path: "/h", propagation: p });
    const plan = (ps: number[]) => planMounts({ criMounts: ps.map(m), privileged: false, readonlyRootfs: false, sandboxFiles: {} }).rootfsPropagation;
    expect(plan([MountPropagation.PROPAGATION_PRIVATE])).toBeUndefined();
    expect(plan([MountPropagation.PROPAGATION_HOST_TO_CONTAINER])).toBe("rslave");
    expect(plan([MountPropagation.PROPAGATION_BIDIRECTIONAL, MountPropagation.PROPAGATION_HOST_TO_CONTAINER])).toBe("rshared");
  });
  test("pod files unless a CRI mount covers them; read-only with a read-only rootfs", () => {
    const files = { hosts: "/run/p/hosts", resolvConf: "/run/p/resolv.conf", hostname: "/run/p/hostname", shm: "/run/p/shm" };
    const plan = planMounts({
      criMounts: [mount({ container_path: "/etc/hosts", host_path: "/kubelet/hosts" })],
      privileged: false,
      readonlyRootfs: true,
      sandboxFiles: files,
    });
    const byDest = new Map(plan.mounts.map((m) => [m.destination, m]));
    expect(byDest.get("/etc/hosts")?.source).toBe("/kubelet/hosts");
    expect(byDest.get("/etc/resolv.conf")).toEqual({ destination: "/etc/resolv.conf", type: "bind", source: "/run/p/resolv.conf", options: ["rbind", "rprivate", "ro"] });
    expect(byDest.get("/etc/hostname")?.options).toContain("ro");
    // The pod's /dev/shm replaces the private tmpfs.
    expect(byDest.get("/dev/shm")?.source).toBe("/run/p/shm");
    expect(plan.mounts.filter((m) => m.destination === "/dev/shm").length).toBe(1);
    const rw = planMounts({ criMounts: [], privileged: false, readonlyRootfs: false, sandboxFiles: files });
    expect(rw.mounts.find((m) => m.destination === "/etc/resolv.conf")?.options).toContain("rw");
  });
  test("a CRI mount replaces a default at the same place; /dev replaces everything under it", () => {
    const plan = planMounts({ criMounts: [mount({ container_path: "/dev", host_path: "/dev" })], privileged: false, readonlyRootfs: false, sandboxFiles: {} });
    expect(dests(plan.mounts)).toEqual(["/proc", "/sys", "/sys/fs/cgroup", "/dev"]);
  });
  test("CRI mounts sorted parents first, stable otherwise", () => {
    const plan = planMounts({
      criMounts: [
        mount({ container_path: "/a/b/c", host_path: "/h1" }),
        mount({ container_path: "/z", host_path: "/h2" }),
        mount({ container_path: "/a", host_path: "/h3" }),
        mount({ container_path: "/y", host_path: "/h4" }),
      ],
      privileged: false,
      readonlyRootfs: false,
      sandboxFiles: {},
    });
    expect(dests(plan.mounts).slice(-4)).toEqual(["/z", "/a", "/y", "/a/b/c"]);
  });
  test("spec: masked and read-only paths: defaults, CRI lists, none when privileged", async () => {
    const plain = await buildContainerSpec(input());
    expect(plain.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(plain.linux.readonlyPaths).toEqual([...DEFAULT_READONLY_PATHS]);
    expect(plain.linux.maskedPaths).toContain("/proc/kcore");
    const cri = await buildContainerSpec(input({ config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { masked_paths: ["/proc/x"], readonly_paths: ["/proc/y"] } } }) }));
    expect(cri.linux.maskedPaths).toEqual(["/proc/x"]);
    expect(cri.linux.readonlyPaths).toEqual(["/proc/y"]);
    const priv = await buildContainerSpec(input({
      config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { privileged: true, masked_paths: ["/proc/x"] } } }),
      sandbox: sandboxConfig({ linux: { security_context: { privileged: true } } }),
    }));
    expect(priv.linux.maskedPaths).toEqual([]);
    expect(priv.linux.readonlyPaths).toEqual([]);
  });
});

describe("resources", () => {
  const res = (v: object) => containerConfig({ linux: { resources: v } }).linux?.resources ?? null;
  const FULL = { swap: true, hugetlb: true };
  const NO_SWAP = { swap: false, hugetlb: true };
  test("cpu, memory, hugepages, unified", () => {
    const r = planResources(res({
      cpu_shares: 512, cpu_quota: 50000, cpu_period: 100000, cpuset_cpus: "0-1", cpuset_mems: "0",
      memory_limit_in_bytes: 64 << 20, hugepage_limits: [{ page_size: "2MB", limit: 4 << 20 }], unified: { "memory.high": "1000000" },
    }), FULL);
    expect(r).toEqual({
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: "0-1", mems: "0" },
      memory: { limit: 64 << 20, swap: 64 << 20 },
      hugepageLimits: [{ pageSize: "2MB", limit: 4 << 20 }],
      unified: { "memory.high": "1000000" },
    });
  });
  test("swap: explicit limit wins; nothing without the swap controller", () => {
    expect(planResources(res({ memory_limit_in_bytes: 100, memory_swap_limit_in_bytes: 300 }), FULL).memory).toEqual({ limit: 100, swap: 300 });
    expect(planResources(res({ memory_limit_in_bytes: 100, memory_swap_limit_in_bytes: 300 }), NO_SWAP).memory).toEqual({ limit: 100 });
    expect(planResources(res({}), FULL)).toEqual({});
    expect(planResources(null, FULL)).toEqual({});
  });
  test("bad values are refused", async () => {
    expect((await thrown(() => planResources(res({ memory_limit_in_bytes: -5 }), FULL))).kind).toBe("invalid_argument");
    expect((await thrown(() => planResources(res({ hugepage_limits: [{ page_size: "2 MB", limit: 1 }] }), FULL))).kind).toBe("invalid_argument");
    expect((await thrown(() => planResources(res({ unified: { "../../x": "1" } }), FULL))).kind).toBe("invalid_argument");
    expect((await thrown(() => planResources(res({ memory_limit_in_bytes: 2n ** 62n }), FULL))).kind).toBe("invalid_argument");
  });
  test("hugepage limits: applied with the hugetlb controller; without it zero limits are dropped, non-zero ones fail", async () => {
    // What a kubelet sends for a pod without hugepages: a 0 limit per page size the kernel knows.
    const zero = res({ hugepage_limits: [{ page_size: "2MB" }, { page_size: "1GB" }] });
    const asked = res({ hugepage_limits: [{ page_size: "2MB" }, { page_size: "1GB", limit: 2n << 30n }] });
    expect(planResources(zero, FULL).hugepageLimits).toEqual([{ pageSize: "2MB", limit: 0 }, { pageSize: "1GB", limit: 0 }]);
    expect(planResources(asked, FULL).hugepageLimits).toEqual([{ pageSize: "2MB", limit: 0 }, { pageSize: "1GB", limit: 2 * 2 ** 30 }]);
    expect(planResources(zero, { swap: true, hugetlb: false })).toEqual({});
    expect(planHugepageLimits(zero?.hugepage_limits ?? [], false)).toEqual([]);
    const err = await thrown(() => planResources(asked, { swap: true, hugetlb: false }));
    expect(err.kind).toBe("failed_precondition");
    expect(err.message).toContain("page size 1GB");
    expect(err.message).toContain("no hugetlb controller");
    expect(err.message).toContain("hugepages-1Gi");
    // A malformed page size is the request's fault, controller or not.
    expect((await thrown(() => planHugepageLimits(res({ hugepage_limits: [{ page_size: "huge" }] })?.hugepage_limits ?? [], false))).kind).toBe("invalid_argument");
  });
  test("hugetlb controller: a v1 hierarchy in mountinfo, or v2's cgroup.controllers of the nearest existing parent", async () => {
    const line = (point: string, type: string, opts: string) => `30 23 0:26 / ${point} rw,nosuid shared:9 - ${type} ${type} rw,${opts}`;
    const hybrid = [line("/sys/fs/cgroup/memory", "cgroup", "memory"), line("/sys/fs/cgroup/unified", "cgroup2", "nsdelegate")].join("\n");
    expect(hugetlbMountedV1(hybrid)).toBe(false);
    expect(hugetlbMountedV1(`${hybrid}\n${line("/sys/fs/cgroup/hugetlb", "cgroup", "hugetlb")}`)).toBe(true);
    expect(hugetlbMountedV1(line("/mnt/x", "tmpfs", "hugetlb"))).toBe(false);

    const v1 = tmp("cg-v1");
    writeFileSync(join(v1, "mountinfo"), hybrid);
    expect(await new HugetlbProbe({ root: v1, mountinfo: join(v1, "mountinfo") }).available("/kubepods/pod1")).toBe(false);
    writeFileSync(join(v1, "mountinfo2"), `${hybrid}\n${line("/sys/fs/cgroup/hugetlb", "cgroup", "hugetlb,rw")}`);
    expect(await new HugetlbProbe({ root: v1, mountinfo: join(v1, "mountinfo2") }).available("/kubepods/pod1")).toBe(true);

    const v2 = tmp("cg-v2");
    writeFileSync(join(v2, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n");
    mkdirSync(join(v2, "kubepods", "burstable"), { recursive: true });
    writeFileSync(join(v2, "kubepods", "cgroup.controllers"), "cpuset cpu io memory pids\n");
    const probe = new HugetlbProbe({ root: v2, mountinfo: "/nonexistent" });
    expect(await probe.available("/")).toBe(true);
    expect(await probe.available("/crib")).toBe(true); // not created yet: the root decides
    expect(await probe.available("/kubepods/burstable/pod1")).toBe(false); // kubepods does not offer it
    expect(await probe.available("/../../kubepods")).toBe(false); // stays inside the hierarchy
  });
  test("oom_score_adj: as asked, or clamped to the runtime's when it cannot lower it", async () => {
    expect(planOomScoreAdj(-997n, true, 0)).toEqual({ value: -997, clamped: false });
    expect(planOomScoreAdj(-997n, false, 0)).toEqual({ value: 0, clamped: true });
    expect(planOomScoreAdj(-997n, false, -500)).toEqual({ value: -500, clamped: true });
    expect(planOomScoreAdj(1000n, false, 0)).toEqual({ value: 1000, clamped: false });
    expect((await thrown(() => planOomScoreAdj(1001n, true, 0))).kind).toBe("invalid_argument");
  });
  test("spec: oom_score_adj in process, clamped without CAP_SYS_RESOURCE", async () => {
    const config = containerConfig({ command: ["/bin/sh"], linux: { resources: { oom_score_adj: -997 } } });
    expect((await buildContainerSpec(input({ config }))).process.oomScoreAdj).toBe(-997);
    const lines: string[] = [];
    setLogSink((line) => lines.push(line));
    try {
      expect((await buildContainerSpec(input({ config, runtimeCanLowerOomScore: false, currentOomScoreAdj: 0 }))).process.oomScoreAdj).toBe(0);
      expect((await buildContainerSpec(input({ config, runtimeCanLowerOomScore: false, currentOomScoreAdj: 0 }))).process.oomScoreAdj).toBe(0);
    } finally {
      setLogSink((line) => process.stderr.write(line + "\n"));
    }
    // Said once per process, not once per container.
    expect(lines.filter((l) => l.includes("oom_score_adj")).length).toBe(1);
  });
});

describe("devices", () => {
  test("default rules deny all but the standard set; privileged allows all", async () => {
    const spec = await buildContainerSpec(input());
    const rules = spec.linux.resources?.devices ?? [];
    expect(rules[0]).toEqual({ allow: false, access: "rwm" });
    expect(rules).toContainEqual({ allow: true, type: "c", major: 1, minor: 3, access: "rwm" });
    expect(spec.linux.devices).toBeUndefined();
    const priv = await buildContainerSpec(input({
      config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { privileged: true } } }),
      sandbox: sandboxConfig({ linux: { security_context: { privileged: true } } }),
    }));
    expect(priv.linux.resources?.devices).toEqual([{ allow: true, access: "rwm" }]);
  });
  test("a CRI device gets a node and an allow rule with its permissions", async () => {
    const spec = await buildContainerSpec(input({
      config: containerConfig({ command: ["/bin/sh"], devices: [{ host_path: "/dev/null", container_path: "/dev/xnull", permissions: "rw" }] }),
    }));
    expect(spec.linux.devices).toEqual([{ type: "c", path: "/dev/xnull", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }]);
    expect(spec.linux.resources?.devices?.at(-1)).toEqual({ allow: true, type: "c", major: 1, minor: 3, access: "rw" });
  });
  test("bad devices are refused with the path", async () => {
    const f = join(tmp("dev"), "plain");
    writeFileSync(f, "x");
    for (const d of [
      { host_path: "/dev/null", container_path: "/dev/x", permissions: "rwx" },
      { host_path: f, container_path: "/dev/x", permissions: "r" },
      { host_path: "/nonexistent/dev", container_path: "/dev/x", permissions: "r" },
      { host_path: "dev/null", container_path: "/dev/x", permissions: "r" },
    ]) {
      const err = await thrown(resolveDevices([d]));
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(d.host_path);
    }
  });
});

describe("the whole spec", () => {
  test("process, root, annotations, cgroups path", async () => {
    const spec: OciSpec = await buildContainerSpec(input({
      config: containerConfig({
        command: ["/bin/sh", "-c"],
        args: ["id"],
        envs: [{ key: "FOO", value: "bar" }],
        working_dir: "/work",
        tty: true,
        image: { image: "sha256:abc", user_specified_image: "docker.io/library/busybox:1" },
        linux: { security_context: { readonly_rootfs: true, no_new_privs: true } },
      }),
      user: { uid: 1000, gid: 1000, additionalGids: [1000, 10] },
    }));
    expect(spec.ociVersion).toBe("1.1.0");
    expect(spec.process).toMatchObject({
      terminal: true,
      args: ["/bin/sh", "-c", "id"],
      cwd: "/work",
      user: { uid: 1000, gid: 1000, additionalGids: [1000, 10] },
      noNewPrivileges: true,
      oomScoreAdj: 0,
    });
    expect(spec.process.env).toContain("FOO=bar");
    expect(spec.process.env).toContain("HOSTNAME=pod-host");
    expect(spec.process.rlimits).toBeUndefined();
    expect(spec.root).toEqual({ path: "/run/crib/containers/c1/rootfs", readonly: true });
    expect(spec.linux.cgroupsPath).toBe("/crib/s1/c1");
    expect(spec.annotations).toEqual({
      [ANNOTATIONS.containerType]: "container",
      [ANNOTATIONS.sandboxId]: "s1",
      [ANNOTATIONS.sandboxName]: "pod",
      [ANNOTATIONS.sandboxNamespace]: "default",
      [ANNOTATIONS.sandboxUid]: "uid-1",
      [ANNOTATIONS.containerName]: "app",
      [ANNOTATIONS.imageName]: "docker.io/library/busybox:1",
    });
    // Plain JSON: no bigints (stringify would throw), nothing lost on the way.
    expect(JSON.parse(JSON.stringify(spec))).toEqual(spec);
  });
  test("a privileged container in an unprivileged pod is refused", async () => {
    const err = await thrown(buildContainerSpec(input({ config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { privileged: true } } }) })));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("privileged");
  });
  test("capabilities from the security context reach the spec; unavailable ones are dropped", async () => {
    const lines: string[] = [];
    setLogSink((line) => lines.push(line));
    let spec: OciSpec;
    try {
      spec = await buildContainerSpec(input({
        config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { capabilities: { add_capabilities: ["SYS_RESOURCE", "NET_ADMIN"], drop_capabilities: ["CHOWN"] } } } }),
        availableCapabilities: parseCapabilityMask("000001fffeffffff"),
      }));
    } finally {
      setLogSink((line) => process.stderr.write(line + "\n"));
    }
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("CAP_SYS_RESOURCE");
    const caps = spec.process.capabilities?.bounding ?? [];
    expect(caps).toContain("CAP_NET_ADMIN");
    expect(caps).not.toContain("CAP_SYS_RESOURCE");
    expect(caps).not.toContain("CAP_CHOWN");
  });
  test("by default only capabilities this process holds are granted", async () => {
    const own = new Set(await readPermittedCapabilities());
    const { availableCapabilities: _, ...rest } = input({
      config: containerConfig({ command: ["/bin/sh"], linux: { security_context: { privileged: true } } }),
      sandbox: sandboxConfig({ linux: { security_context: { privileged: true } } }),
    });
    const spec = await buildContainerSpec(rest);
    expect(new Set(spec.process.capabilities?.bounding)).toEqual(own);
  });
});

describe("user resolution", () => {
  function rootfs(passwd?: string, group?: string): string {
    const r = tmp("rootfs");
    mkdirSync(join(r, "etc"));
    if (passwd !== undefined) writeFileSync(join(r, "etc/passwd"), passwd);
    if (group !== undefined) writeFileSync(join(r, "etc/group"), group);
    return r;
  }
  const PASSWD = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\nwww:x:33:33::/var/www:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n";
  const GROUP = "root:x:0:\nwww:x:33:app\nappgrp:x:1001:\nextra:x:2000:app,www\nwheel:x:10:root\n";
  const base = { imageUser: "", supplementalGroups: [] as bigint[] };

  test("empty user = root, with root's groups", async () => {
    expect(await resolveUser(rootfs(PASSWD, GROUP), base)).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10], username: "root" });
  });
  test("image user by name, uid, name:group, uid:gid", async () => {
    const r = rootfs(PASSWD, GROUP);
    expect(await resolveUser(r, { ...base, imageUser: "app" })).toEqual({ uid: 1000, gid: 1001, additionalGids: [1001, 33, 2000], username: "app" });
    expect(await resolveUser(r, { ...base, imageUser: "1000" })).toMatchObject({ uid: 1000, gid: 1001, username: "app" });
    expect(await resolveUser(r, { ...base, imageUser: "app:www" })).toMatchObject({ uid: 1000, gid: 33, additionalGids: [33, 2000] });
    expect(await resolveUser(r, { ...base, imageUser: "1000:50" })).toMatchObject({ uid: 1000, gid: 50, additionalGids: [50, 33, 2000] });
  });
  test("a numeric uid not in passwd gets gid 0 (as containerd); no passwd at all is fine", async () => {
    expect(await resolveUser(rootfs(PASSWD, GROUP), { ...base, imageUser: "4242" })).toEqual({ uid: 4242, gid: 0, additionalGids: [0] });
    expect(await resolveUser(rootfs(), { ...base, runAsUser: 7n, runAsGroup: 8n })).toEqual({ uid: 7, gid: 8, additionalGids: [8] });
  });
  test("security context wins over the image", async () => {
    const r = rootfs(PASSWD, GROUP);
    expect(await resolveUser(r, { ...base, imageUser: "app", runAsUser: 33n })).toMatchObject({ uid: 33, gid: 33, username: "www" });
    expect(await resolveUser(r, { ...base, imageUser: "app", runAsUsername: "www" })).toMatchObject({ uid: 33, gid: 33 });
    expect(await resolveUser(r, { ...base, imageUser: "app:www", runAsGroup: 5n })).toMatchObject({ uid: 1000, gid: 5 });
    // The kubelet forwards the image's uid as run_as_user; the image's group still applies.
    expect(await resolveUser(r, { ...base, imageUser: "1000:50", runAsUser: 1000n })).toMatchObject({ uid: 1000, gid: 50 });
    // A different run_as_user does not take the image's group.
    expect(await resolveUser(r, { ...base, imageUser: "1000:50", runAsUser: 33n })).toMatchObject({ uid: 33, gid: 33 });
  });
  test("supplemental groups: image memberships + CRI groups, deduplicated; strict skips /etc/group", async () => {
    const r = rootfs(PASSWD, GROUP);
    expect((await resolveUser(r, { ...base, imageUser: "app", supplementalGroups: [2000n, 3000n] })).additionalGids).toEqual([1001, 33, 2000, 3000]);
    expect((await resolveUser(r, { ...base, imageUser: "app", supplementalGroups: [3000n], strictSupplementalGroups: true })).additionalGids).toEqual([1001, 3000]);
  });
  test("unknown names are invalid_argument naming the user/group and the file", async () => {
    const r = rootfs(PASSWD, GROUP);
    const u = await thrown(resolveUser(r, { ...base, imageUser: "nobody-here" }));
    expect(u.kind).toBe("invalid_argument");
    expect(u.message).toContain("nobody-here");
    expect(u.message).toContain("/etc/passwd");
    const g = await thrown(resolveUser(r, { ...base, imageUser: "app:nogroup" }));
    expect(g.message).toContain("nogroup");
    expect(g.message).toContain("/etc/group");
    const none = await thrown(resolveUser(rootfs(), { ...base, runAsUsername: "app" }));
    expect(none.message).toContain("app");
  });
  test("ids out of range are refused", async () => {
    const r = rootfs(PASSWD, GROUP);
    for (const spec of [{ runAsUser: -1n }, { runAsUser: 2n ** 32n - 1n }, { runAsGroup: 2n ** 40n, runAsUser: 1n }, { imageUser: "99999999999" }]) {
      expect((await thrown(resolveUser(r, { ...base, ...spec }))).kind).toBe("invalid_argument");
    }
    expect((await resolveUser(r, { ...base, runAsUser: 2n ** 32n - 2n })).uid).toBe(2 ** 32 - 2);
  });

  describe("hostile rootfs", () => {
    let outside = "";
    beforeAll(() => {
      outside = tmp("outside");
      writeFileSync(join(outside, "passwd"), "evil:x:0:0::/:/bin/sh\n");
    });
    test("an absolute /etc/passwd symlink resolves inside the rootfs", async () => {
      const r = rootfs(undefined, GROUP);
      symlinkSync(join(outside, "passwd"), join(r, "etc/passwd"));
      // The host file must not be read: "evil" is unknown.
      expect((await thrown(resolveUser(r, { ...base, imageUser: "evil" }))).message).toContain("evil");
      // ...and the same path inside the rootfs is what counts.
      mkdirSync(join(r, outside), { recursive: true });
      writeFileSync(join(r, outside, "passwd"), "inside:x:5:6::/:/bin/sh\n");
      expect(await resolveUser(r, { ...base, imageUser: "inside" })).toMatchObject({ uid: 5, gid: 6 });
    });
    test("relative symlinks climbing out stop at the rootfs", async () => {
      const r = rootfs(undefined, GROUP);
      const depth = r.split("/").length;
      symlinkSync(`${"../".repeat(depth + 3)}${outside.slice(1)}/passwd`, join(r, "etc/passwd"));
      expect((await thrown(resolveUser(r, { ...base, imageUser: "evil" }))).kind).toBe("invalid_argument");
      expect(await secureJoin(r, "/etc/passwd")).toBe(join(r, outside, "passwd"));
    });
    test("a symlinked /etc pointing at / is re-rooted", async () => {
      const r = tmp("rootfs-etc-link");
      symlinkSync("/", join(r, "etc"));
      writeFileSync(join(r, "passwd"), "top:x:9:9::/:/bin/sh\n");
      expect(await secureJoin(r, "/etc/passwd")).toBe(join(r, "passwd"));
      expect(await resolveUser(r, { ...base, imageUser: "top" })).toMatchObject({ uid: 9 });
    });
    test("symlink loops fail instead of hanging", async () => {
      const r = rootfs();
      symlinkSync("/etc/b", join(r, "etc/a"));
      symlinkSync("/etc/a", join(r, "etc/b"));
      symlinkSync("/etc/a", join(r, "etc/passwd"));
      const err = await thrown(resolveUser(r, { ...base, imageUser: "x" }));
      expect(err.message).toContain("too many symlinks");
    });
    test("a FIFO or directory /etc/passwd is refused without blocking", async () => {
      const r = rootfs();
      execFileSync("mkfifo", [join(r, "etc/passwd")]);
      expect((await thrown(resolveUser(r, { ...base, imageUser: "x" }))).message).toContain("not a regular file");
      const d = rootfs();
      mkdirSync(join(d, "etc/passwd"));
      expect((await thrown(resolveUser(d, { ...base, imageUser: "1" }))).message).toContain("not a regular file");
    });
    test("huge files, too many lines and too long lines are refused", async () => {
      const big = rootfs("root:x:0:0::/:/bin/sh\n" + "#".repeat(MAX_ID_FILE_BYTES));
      expect((await thrown(resolveUser(big, base))).message).toContain("larger than");
      const many = rootfs("a:x:1:1::/:/bin/sh\n".repeat(MAX_ID_FILE_LINES + 1));
      expect((await thrown(resolveUser(many, base))).message).toContain("lines");
      const exact = rootfs("a:x:1:1::/:/bin/sh\n".repeat(MAX_ID_FILE_LINES));
      expect((await resolveUser(exact, { ...base, imageUser: "a" })).uid).toBe(1);
      const long = rootfs(`root:x:0:0:${"g".repeat(70_000)}:/:/bin/sh\n`);
      expect((await thrown(resolveUser(long, base))).message).toContain("longer than");
    });
    test("a huge /etc/group is refused too", async () => {
      const r = rootfs(PASSWD, `big:x:5:${"m,".repeat(40_000)}\n`);
      expect((await thrown(resolveUser(r, { ...base, imageUser: "app" }))).message).toContain("/etc/group");
    });
  });
});

describe("secureJoin", () => {
  test("lexical cases", async () => {
    const r = tmp("sj");
    expect(await secureJoin(r, "/")).toBe(r);
    expect(await secureJoin(r, "../../a/./b/../c")).toBe(join(r, "a/c"));
    expect(await secureJoin(r, "a//b/")).toBe(join(r, "a/b"));
  });
  test("relative symlinks resolve from their directory", async () => {
    const r = tmp("sj-rel");
    mkdirSync(join(r, "x/y"), { recursive: true });
    symlinkSync("../z", join(r, "x/y/link"));
    expect(await secureJoin(r, "/x/y/link/f")).toBe(join(r, "x/z/f"));
  });
});
