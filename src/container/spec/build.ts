// The OCI runtime spec (config.json) of a container from its CRI ContainerConfig, the
// pod's PodSandboxConfig and the image config. The caller (container/) has already
// mounted the rootfs, pinned the pod's namespaces and written the pod's files; this
// module only decides. It reads two kinds of host files: a Localhost seccomp profile
// and the CRI devices (to learn their numbers).
//
// Not done here, on purpose: AppArmor and SELinux options are ignored (crib has no LSM
// support; SELinux relabel flags on mounts are ignored too); rlimits are left to the
// runtime's defaults; privileged containers get every capability and device permission
// but not the host's device nodes (see devices.ts).

import { invalidArgument } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import type { ContainerConfig, Mount, PodSandboxConfig } from "../../protocol/types.ts";
import { computeCapabilities, readPermittedCapabilities } from "./capabilities.ts";
import { defaultDeviceRules, deviceBindMounts, resolveDevices } from "./devices.ts";
import { planMaskedPaths, planMounts, type RroSupport, type SandboxFiles } from "./mounts.ts";
import { planNamespaces, type NamespacePaths } from "./namespaces.ts";
import { OCI_VERSION, type OciSpec } from "./oci_types.ts";
import { processArgs, processCwd, processEnv } from "./process.ts";
import { planOomScoreAdj, planResources, planSysctls } from "./resources.ts";
import { resolveSeccomp, seccompChoice } from "./seccomp.ts";
import type { ResolvedUser } from "./user.ts";

const logger = log.with({ component: "oci-spec" });

/** The annotations containerd's CRI plugin sets, which tools and runtimes read. */
export const ANNOTATIONS = {
  containerType: "io.kubernetes.cri.container-type",
  sandboxId: "io.kubernetes.cri.sandbox-id",
  sandboxName: "io.kubernetes.cri.sandbox-name",
  sandboxNamespace: "io.kubernetes.cri.sandbox-namespace",
  sandboxUid: "io.kubernetes.cri.sandbox-uid",
  containerName: "io.kubernetes.cri.container-name",
  imageName: "io.kubernetes.cri.image-name",
} as const;

export interface ImageConfigForSpec {
  user: string;
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  stopSignal: string;
}

export interface ContainerSpecInput {
  containerId: string;
  sandboxId: string;
  config: ContainerConfig;
  sandbox: PodSandboxConfig;
  image: ImageConfigForSpec;
  /** The mounted rootfs (absolute). */
  rootfs: string;
  /** Pinned namespace files of the pod (see namespaces.ts for how modes use them). */
  namespaces: NamespacePaths;
  cgroupsPath: string;
  user: ResolvedUser;
  hostname: string;
  /** The pod's files, bind-mounted as containerd does. */
  sandboxFiles: SandboxFiles;
  /** Directory for relative Localhost seccomp refs (absolute refs are used as they are). */
  seccompProfileRoot?: string;
  /** False where the runtime lacks CAP_SYS_RESOURCE: oom_score_adj is kept >= currentOomScoreAdj. */
  runtimeCanLowerOomScore: boolean;
  /** oom_score_adj of the process that runs runc (what the container inherits); default 0. */
  currentOomScoreAdj?: number;
  /**
   * Capabilities the runtime can grant; default this process's permitted set (read once),
   * since runc fails to start a process given one it does not hold.
   */
  availableCapabilities?: readonly string[];
  /** Whether the memory swap controller exists (memory.memsw.* or memory.swap.max). */
  swapSupported?: boolean;
  /** Whether the hugetlb controller exists for this container's cgroup; default true. */
  hugetlbSupported?: boolean;
  /** A private cgroup namespace (containerd does this on cgroup v2). */
  cgroupNamespace?: boolean;
  /** "container" (default) or "sandbox" for an infra container. */
  containerType?: "container" | "sandbox";
  /** Whether the runtime handler makes recursive read-only mounts (default: assume it does). */
  recursiveReadOnlyMounts?: RroSupport;
  /** Where each image volume of config.mounts is mounted on the host (with its sub path). */
  imageVolumeSources?: ReadonlyMap<Mount, string>;
  /** For tests: Node-style arch and kernel release the seccomp profile is built for. */
  arch?: string;
  kernelRelease?: string;
}

let warnedOomClamp = false;
let warnedNoHugetlb = false;
let ownCaps: Promise<string[]> | undefined;
const ownCapabilities = () => (ownCaps ??= readPermittedCapabilities());

export async function buildContainerSpec(input: ContainerSpecInput): Promise<OciSpec> {
  const { config, sandbox } = input;
  const sc = config.linux?.security_context ?? null;
  const podSc = sandbox.linux?.security_context ?? null;
  const privileged = sc?.privileged ?? false;
  if (privileged && !(podSc?.privileged ?? false)) {
    throw invalidArgument(`container ${input.containerId} is privileged but its pod sandbox ${input.sandboxId} is not`);
  }
  if (!input.rootfs.startsWith("/")) throw invalidArgument(`rootfs ${JSON.stringify(input.rootfs)} is not absolute`);

  // A container without userns_options (an older client) is in its pod's user namespace.
  const nsOptions = sc?.namespace_options ?? podSc?.namespace_options ?? null;
  const podUserns = podSc?.namespace_options?.userns_options ?? null;
  const ns = planNamespaces(
    nsOptions && !nsOptions.userns_options && podUserns ? { ...nsOptions, userns_options: podUserns } : nsOptions,
    input.namespaces,
    input.cgroupNamespace ?? false,
  );

  const caps = computeCapabilities({
    privileged,
    add: sc?.capabilities?.add_capabilities ?? [],
    drop: sc?.capabilities?.drop_capabilities ?? [],
    ambient: sc?.capabilities?.add_ambient_capabilities ?? [],
    available: input.availableCapabilities ?? (await ownCapabilities()),
  });
  if (caps.unavailable.length > 0 && !privileged) {
    logger.warn("capabilities left out: the runtime does not hold them", { container: input.containerId, capabilities: caps.unavailable });
  }

  const oom = planOomScoreAdj(config.linux?.resources?.oom_score_adj ?? 0n, input.runtimeCanLowerOomScore, input.currentOomScoreAdj ?? 0);
  if (oom.clamped && !warnedOomClamp) {
    warnedOomClamp = true;
    logger.warn("oom_score_adj raised to the runtime's own: lowering it needs CAP_SYS_RESOURCE, which this host withholds", {
      container: input.containerId,
      requested: String(config.linux?.resources?.oom_score_adj ?? 0n),
      applied: oom.value,
    });
  }

  const readonlyRootfs = sc?.readonly_rootfs ?? false;
  const mountPlan = planMounts({
    criMounts: config.mounts,
    privileged,
    readonlyRootfs,
    sandboxFiles: input.sandboxFiles,
    ...(input.recursiveReadOnlyMounts !== undefined ? { rro: input.recursiveReadOnlyMounts } : {}),
    ...(input.imageVolumeSources !== undefined ? { imageSources: input.imageVolumeSources } : {}),
  });
  const paths = planMaskedPaths({ privileged, masked: sc?.masked_paths ?? [], readonly: sc?.readonly_paths ?? [] });

  // Privileged containers run without seccomp, as in containerd and CRI-O.
  const seccomp = privileged
    ? undefined
    : await resolveSeccomp(
        seccompChoice(sc?.seccomp ?? null, sc?.seccomp_profile_path ?? ""),
        {
          capabilities: caps.capabilities.bounding,
          ...(input.arch !== undefined ? { arch: input.arch } : {}),
          ...(input.kernelRelease !== undefined ? { kernelRelease: input.kernelRelease } : {}),
        },
        input.seccompProfileRoot,
      );
  if (sc?.apparmor !== null && sc?.apparmor !== undefined) {
    logger.debug("AppArmor profile ignored: crib does not support AppArmor", { container: input.containerId });
  }

  const devices = await resolveDevices(config.devices);
  const hugetlb = input.hugetlbSupported ?? true;
  const resources = planResources(config.linux?.resources ?? null, { swap: input.swapSupported ?? false, hugetlb });
  if (!hugetlb && !warnedNoHugetlb && (config.linux?.resources?.hugepage_limits.length ?? 0) > 0) {
    warnedNoHugetlb = true;
    logger.info("hugepage limits of 0 left out of container specs: this node's cgroups have no hugetlb controller (non-zero limits fail CreateContainer)", {
      container: input.containerId,
      pageSizes: config.linux?.resources?.hugepage_limits.map((h) => h.page_size),
    });
  }
  resources.devices = [...defaultDeviceRules(privileged), ...devices.rules];

  const sysctl = planSysctls(sandbox.linux?.sysctls ?? {}, ns);

  const user = input.user;
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: config.tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: [...user.additionalGids] },
      args: processArgs(config.command, config.args, input.image),
      env: processEnv({ imageEnv: input.image.env, criEnvs: config.envs, hostname: input.hostname, tty: config.tty }),
      cwd: processCwd(config.working_dir, input.image.workingDir),
      capabilities: caps.capabilities,
      noNewPrivileges: sc?.no_new_privs ?? false,
      oomScoreAdj: oom.value,
    },
    root: { path: input.rootfs, readonly: readonlyRootfs },
    mounts: mountPlan.mounts,
    annotations: annotationsFor(input),
    linux: {
      namespaces: ns.namespaces,
      resources,
      cgroupsPath: input.cgroupsPath,
      maskedPaths: paths.maskedPaths,
      readonlyPaths: paths.readonlyPaths,
    },
  };
  // A hostname needs a UTS namespace of the container's own (new or the pod's).
  if (!ns.hostUts && input.hostname !== "") spec.hostname = input.hostname;
  if (ns.userNamespace !== undefined) spec.mounts.push(...deviceBindMounts(devices.devices, devices.hostPaths));
  else if (devices.devices.length > 0) spec.linux.devices = devices.devices;
  if (seccomp !== undefined) spec.linux.seccomp = seccomp;
  if (mountPlan.rootfsPropagation !== undefined) spec.linux.rootfsPropagation = mountPlan.rootfsPropagation;
  if (Object.keys(sysctl).length > 0) spec.linux.sysctl = sysctl;
  if (ns.userNamespace !== undefined) {
    const { uids, gids } = ns.userNamespace;
    spec.linux.uidMappings = [{ containerID: uids.containerId, hostID: uids.hostId, size: uids.size }];
    spec.linux.gidMappings = [{ containerID: gids.containerId, hostID: gids.hostId, size: gids.size }];
  }
  return spec;
}

function annotationsFor(input: ContainerSpecInput): Record<string, string> {
  const md = input.sandbox.metadata;
  const image = input.config.image;
  return {
    [ANNOTATIONS.containerType]: input.containerType ?? "container",
    [ANNOTATIONS.sandboxId]: input.sandboxId,
    [ANNOTATIONS.sandboxName]: md?.name ?? "",
    [ANNOTATIONS.sandboxNamespace]: md?.namespace ?? "",
    [ANNOTATIONS.sandboxUid]: md?.uid ?? "",
    [ANNOTATIONS.containerName]: input.config.metadata?.name ?? "",
    [ANNOTATIONS.imageName]: image?.user_specified_image || image?.image || "",
  };
}
