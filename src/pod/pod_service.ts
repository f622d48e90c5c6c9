// Pod sandboxes: state dirs, pinned namespaces, pod files, sysctls, records.
// Networking beyond loopback (CNI) hooks in at run/stop.
import { mkdir, readdir, rm } from "node:fs/promises";
import { writeFileSync } from "node:fs";
import { hostname as nodeHostname } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Config } from "../config/config.ts";
import { NamespaceMode, PodSandboxState, type PodSandboxConfig } from "../protocol/types.ts";
import { errnoCode, errorMessage, internal, invalidArgument, notFound } from "../errors.ts";
import { log } from "../log/logger.ts";
import { lifecycle } from "../events/bus.ts";
import { bootId, nowNs } from "../state/boot.ts";
import { ClaimedCreates } from "../util/claims.ts";
import { MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, mount, umount2 } from "../sys/mount.ts";
import { pinNamespaces, unpinNamespaces, type PinnedKind } from "./namespaces.ts";
import { pinUserNamespacePod } from "./user_namespace.ts";
import { podUserNamespace } from "./userns_mapping.ts";
import { writePodFiles, type PodFiles } from "./pod_files.ts";
import { killPauseFor, startPidInfra, stopPidInfra } from "./pid_infra.ts";
import { PodStore, type PodNamespaces, type PodRecord } from "./pod_store.ts";
import { randomHex } from "../util/random_hex.ts";

const logger = log.with({ component: "pod" });

/** What the pod component needs from the container component. */
export interface PodContainers {
  /** Stop every container of the pod (SIGKILL after `timeoutS`). */
  stopAll(podId: string, timeoutS: number): Promise<void>;
  /** Remove every container of the pod. */
  removeAll(podId: string): Promise<void>;
}

/** What the pod component needs from pod networking (CNI, src/pod/cni/). */
export interface PodNetwork {
  /** Attach the pod's network namespace; returns its IPs, first IPv4 first. */
  setUp(req: { podId: string; config: PodSandboxConfig; netns: string }): Promise<string[]>;
  /** Detach it; idempotent, and works when the netns is already gone. */
  tearDown(podId: string): Promise<void>;
}

const SYSCTL_NAME = /^[a-z0-9_]+(\.[a-z0-9_-]+)+$/;

/** Sysctls a pod may set, and which of its namespaces each needs (as the kubelet's safe/unsafe lists assume). */
/** Write a pod sysctl (the thread is in the pod's namespaces); a value the kernel refuses is the request's fault. */
function setPodSysctl(name: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${name.replace(/\./g, "/")}`, value);
  } catch (e) {
    const code = errnoCode(e);
    if (code === "EINVAL" || code === "ERANGE") throw invalidArgument(`RunPodSandbox: sysctl "${name}": the kernel refuses the value ${JSON.stringify(value.slice(0, 100))} (${code})`, e);
    if (code === "ENOENT") throw invalidArgument(`RunPodSandbox: sysctl "${name}" does not exist in this kernel`, e);
    throw internal(`RunPodSandbox: setting sysctl "${name}" failed: ${errorMessage(e)}`, e);
  }
}

export function sysctlNamespace(name: string): "net" | "ipc" | undefined {
  if (name.startsWith("net.")) return "net";
  if (/^kernel\.(shm(all|max|mni|_rmid_forced)|msg(max|mnb|mni)|sem)$/.test(name) || name.startsWith("fs.mqueue.")) return "ipc";
  return undefined;
}

/**
 * The hostname a pod's containers see: its own, else the node's (as containerd and
 * CRI-O; never the pod's name, which may be longer than a hostname may be). Host-network
 * pods share the node's UTS namespace, so theirs is the node's whatever was asked.
 */
export function podHostname(config: PodSandboxConfig): string {
  const hostNet = config.linux?.security_context?.namespace_options?.network === NamespaceMode.NODE;
  return (!hostNet && config.hostname) || nodeHostname();
}

export class PodService {
  readonly store: PodStore;
  private readonly creates: ClaimedCreates;
  containers: PodContainers = { stopAll: async () => {}, removeAll: async () => {} };
  /** Loopback only until the daemon sets the CNI manager. */
  network: PodNetwork = { setUp: async () => [], tearDown: async () => {} };

  constructor(private readonly config: Config, db: Database) {
    this.store = new PodStore(db);
    this.creates = new ClaimedCreates("pod sandbox", (k) => this.store.byNameKey(k), (id, u) => this.store.setUnclaimed(id, u));
  }

  podDir(id: string): string {
    return join(this.config.state, "pods", id);
  }

  /** The pod's files its containers mount: /etc/{hostname,hosts,resolv.conf} and /dev/shm. */
  files(pod: PodRecord): PodFiles & { shm?: string } {
    const dir = this.podDir(pod.id);
    const hostIpc = pod.config.linux?.security_context?.namespace_options?.ipc === NamespaceMode.NODE;
    return { hostname: join(dir, "hostname"), hosts: join(dir, "hosts"), resolvConf: join(dir, "resolv.conf"), shm: hostIpc ? "/dev/shm" : join(dir, "shm") };
  }

  async run(config: PodSandboxConfig, runtimeHandler: string, signal: AbortSignal): Promise<string> {
    const md = config.metadata;
    if (!md || !md.name || !md.namespace || !md.uid) throw invalidArgument("RunPodSandbox: config.metadata needs name, namespace and uid");
    for (const [field, v] of [["name", md.name], ["namespace", md.namespace], ["uid", md.uid]] as const) {
      // Kubernetes names are at most 253 characters; these end up in keys, logs and CNI args.
      if (v.length > 253 || v.includes("\0")) throw invalidArgument(`RunPodSandbox: config.metadata.${field} is not a Kubernetes name (${v.length} characters)`);
    }
    const hostname = config.hostname;
    if (hostname.length > 64 || hostname.includes("\0")) throw invalidArgument(`RunPodSandbox: hostname ${JSON.stringify(hostname.slice(0, 80))} is longer than 64 characters or holds a NUL`);
    const handler = runtimeHandler || this.config.runtime.default;
    if (!this.config.runtime.handlers[handler]) {
      throw invalidArgument(`RunPodSandbox: runtime handler "${handler}" is not configured (known: ${Object.keys(this.config.runtime.handlers).join(", ")})`);
    }
    const key = `${md.name}_${md.namespace}_${md.uid}_${md.attempt}`;
    return this.creates.run(key, signal, () => this.create(key, config, handler));
  }

  private async create(key: string, config: PodSandboxConfig, handler: string): Promise<string> {
    const ns = config.linux?.security_context?.namespace_options;
    const hostNet = ns?.network === NamespaceMode.NODE;
    const hostIpc = ns?.ipc === NamespaceMode.NODE;
    const userns = podUserNamespace(ns?.userns_options, "RunPodSandbox: config.linux.security_context");
    if (userns && (hostNet || hostIpc || ns?.pid === NamespaceMode.NODE)) {
      throw invalidArgument("RunPodSandbox: a pod with its own user namespace (hostUsers: false) cannot use the node's network, IPC or PID namespace");
    }
    if (userns && ns?.pid === NamespaceMode.POD) {
      throw invalidArgument("RunPodSandbox: a shared PID namespace (shareProcessNamespace) is not supported together with a pod user namespace (hostUsers: false)");
    }
    const sysctls = Object.entries(config.linux?.sysctls ?? {});
    for (const [name] of sysctls) {
      const need = sysctlNamespace(name);
      if (!SYSCTL_NAME.test(name) || !need) throw invalidArgument(`RunPodSandbox: sysctl "${name}" is not a namespaced sysctl a pod may set`);
      if ((need === "net" && hostNet) || (need === "ipc" && hostIpc)) throw invalidArgument(`RunPodSandbox: sysctl "${name}" cannot be set in a pod that uses the host's ${need} namespace`);
    }

    const id = randomHex(32);
    const dir = this.podDir(id);
    await mkdir(dir, { recursive: true, mode: 0o711 });
    const kinds: PinnedKind[] = [...(hostNet ? [] : (["net", "uts"] as const)), ...(hostIpc ? [] : (["ipc"] as const))];
    const hostname = podHostname(config);
    try {
      const setSysctls = () => {
        for (const [name, value] of sysctls) {
          // The kernel lets only the owning user namespace's root write IPC sysctls (not
          // the initial root): in a user namespace pod, runc sets them in each container
          // (they are in every container's spec too).
          if (userns && sysctlNamespace(name) === "ipc") continue;
          setPodSysctl(name, value);
        }
      };
      const pinned: PodNamespaces = userns
        ? pinUserNamespacePod(join(dir, "ns"), userns, hostname, setSysctls)
        : pinNamespaces(join(dir, "ns"), kinds, hostname, setSysctls);
      if (ns?.pid === NamespaceMode.POD) {
        const infra = startPidInfra(join(dir, "ns"));
        pinned.pid = infra.nsPath;
        pinned.infraPid = infra.pid;
      }
      await writePodFiles(dir, hostname, config.dns_config);
      if (!hostIpc) await mountPodShm(join(dir, "shm"));
      // hostNetwork pods get no CNI.
      const ips = hostNet ? [] : await this.network.setUp({ podId: id, config, netns: pinned.net ?? join(dir, "ns", "net") });
      const rec: PodRecord = {
        id, nameKey: key, config, runtimeHandler: handler, state: PodSandboxState.SANDBOX_READY, createdNs: nowNs(),
        namespaces: pinned, ips, unclaimed: true, bootId: bootId(),
      };
      this.store.insert(rec);
      lifecycle.publish({ kind: "pod-ready", podId: id });
      logger.info("pod sandbox ready", { pod: id, name: key, namespaces: kinds });
      return id;
    } catch (e) {
      if (!hostNet) await this.network.tearDown(id).catch((d: unknown) => logger.error("cannot tear down the network of a pod that failed to start", { pod: id, error: errorMessage(d) }));
      killPauseFor(join(dir, "ns")); // a shared PID namespace's PID 1, if it got that far
      unpinNamespaces(join(dir, "ns"), [...kinds, "pid", "user"]);
      unmountQuiet(join(dir, "shm"));
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Look a pod up by full id or unique prefix. */
  find(idOrPrefix: string): PodRecord | undefined {
    if (!idOrPrefix) throw invalidArgument("pod sandbox id is empty");
    const exact = this.store.get(idOrPrefix);
    if (exact) return exact;
    const matches = this.store.byIdPrefix(idOrPrefix);
    if (matches.length > 1) throw invalidArgument(`pod sandbox id prefix "${idOrPrefix}" is ambiguous (${matches.length} pods)`);
    return matches[0];
  }

  get(idOrPrefix: string): PodRecord {
    const p = this.find(idOrPrefix);
    if (!p) throw notFound(`pod sandbox "${idOrPrefix}" not found`);
    return p;
  }

  /**
   * Stop: containers killed, then what the pod holds released, as containerd does at
   * StopPodSandbox: network torn down (CNI DEL), namespaces unpinned, /dev/shm
   * unmounted. The record stays (NOTREADY, no IPs) until RemovePodSandbox.
   * Idempotent; absent pods are fine. The pod is marked NOTREADY first, so a crash
   * part-way leaves a NOTREADY pod whose teardown finishTeardowns() completes at start.
   */
  async stop(idOrPrefix: string): Promise<void> {
    const pod = this.find(idOrPrefix);
    if (!pod) return;
    const wasReady = pod.state !== PodSandboxState.SANDBOX_NOTREADY;
    if (wasReady) this.store.setState(pod.id, PodSandboxState.SANDBOX_NOTREADY);
    await this.containers.stopAll(pod.id, 0);
    await this.release(pod);
    if (wasReady) {
      lifecycle.publish({ kind: "pod-stopped", podId: pod.id });
      logger.info("pod sandbox stopped", { pod: pod.id });
    }
  }

  /** Release the pod's network, namespaces and /dev/shm; every step is idempotent. */
  private async release(pod: PodRecord): Promise<void> {
    const nsDir = join(this.podDir(pod.id), "ns");
    // Before unpinning: stopPidInfra tells the pause process from a reused pid by the pinned namespace.
    if (pod.namespaces.infraPid && pod.namespaces.pid) stopPidInfra(pod.namespaces.infraPid, pod.namespaces.pid);
    // The netns is still pinned here, so the plugins can remove the pod's interface.
    await this.network.tearDown(pod.id);
    unpinNamespaces(nsDir, ["net", "ipc", "uts", "pid", "user"]);
    unmountQuiet(join(this.podDir(pod.id), "shm"));
    if (pod.ips.length > 0 || Object.keys(pod.namespaces).length > 0) this.store.setReleased(pod.id);
  }

  /** Remove: containers removed, namespaces unpinned, files gone. Idempotent. */
  async remove(idOrPrefix: string): Promise<void> {
    const pod = this.find(idOrPrefix);
    if (!pod) return;
    await this.stop(pod.id);
    await this.containers.removeAll(pod.id);
    await rm(this.podDir(pod.id), { recursive: true, force: true });
    this.store.remove(pod.id);
    lifecycle.publish({ kind: "pod-removed", pod });
    logger.info("pod sandbox removed", { pod: pod.id });
  }

  list(): PodRecord[] {
    return this.store.list();
  }

  /**
   * Start-up: after a reboot no pod's namespaces survived (they lived in
   * /run): those pods are not ready. Pod dirs no record names (a crash
   * during RunPodSandbox) are unmounted and removed.
   */
  async recover(): Promise<void> {
    const boot = bootId();
    for (const p of this.store.list()) {
      if (p.bootId !== boot && p.state === PodSandboxState.SANDBOX_READY) {
        logger.info("pod sandbox not ready after a reboot", { pod: p.id });
        this.store.setState(p.id, PodSandboxState.SANDBOX_NOTREADY);
      }
    }
    const known = new Set(this.store.list().map((p) => p.id));
    for (const id of await readdir(join(this.config.state, "pods")).catch(() => [] as string[])) {
      if (known.has(id) || !/^[0-9a-f]{64}$/.test(id)) continue;
      logger.warn("removing a pod sandbox left by a crash before it was recorded", { pod: id });
      if (killPauseFor(join(this.podDir(id), "ns")) > 0) logger.warn("stopped the pause process of that pod sandbox", { pod: id });
      unpinNamespaces(join(this.podDir(id), "ns"), ["net", "ipc", "uts", "pid", "user"]);
      unmountQuiet(join(this.podDir(id), "shm"));
      await rm(this.podDir(id), { recursive: true, force: true });
    }
  }

  /**
   * Start-up, once containers are re-read: finish the stop of every NOTREADY pod
   * (a crash mid-StopPodSandbox, or a reboot that left CNI leases on disk). Each
   * step is idempotent and cheap when already done, so it may run beside the
   * kubelet's own Stop/RemovePodSandbox calls.
   */
  async finishTeardowns(): Promise<void> {
    let pods = 0;
    for (const p of this.store.list()) {
      if (p.state !== PodSandboxState.SANDBOX_NOTREADY) continue;
      pods++;
      try {
        await this.stop(p.id);
      } catch (e) {
        logger.error("cannot finish tearing down a stopped pod sandbox; StopPodSandbox or RemovePodSandbox retries it", { pod: p.id, error: errorMessage(e) });
      }
    }
    logger.info("stopped pod sandboxes released after start-up", { pods });
  }
}

/** Size of a pod's shared /dev/shm, as containerd and the kubelet's default. */
const SHM_SIZE = 64 * 1024 * 1024;

async function mountPodShm(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o1777 });
  mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, `mode=1777,size=${SHM_SIZE}`);
}

function unmountQuiet(path: string): void {
  try {
    umount2(path, MNT_DETACH);
  } catch {
    // not mounted
  }
}
