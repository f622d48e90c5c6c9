// Containers: rootfs, OCI spec, and the monitor that runs them under runc.
// The daemon holds no container: the monitor does, and reports exits here.
import type { Database } from "bun:sqlite";
import { closeSync, constants, openSync } from "node:fs";
import { chmod, mkdir, readdir, rename, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import type { Config } from "../config/config.ts";
import { ContainerState, NamespaceMode, PodSandboxState, Signal, SupplementalGroupsPolicy, type ContainerConfig, type LinuxContainerResources, type Mount } from "../protocol/types.ts";
import { CribError, deadlineExceeded, errnoCode, failedPrecondition, invalidArgument, notFound, unavailable } from "../errors.ts";
import type { ImageService } from "../image/image_service.ts";
import { log } from "../log/logger.ts";
import type { ExitInfo, MonitorClient } from "../monitor/client.ts";
import { podHostname, type PodService } from "../pod/pod_service.ts";
import type { PodRecord } from "../pod/pod_store.ts";
import { lifecycle } from "../events/bus.ts";
import { bootId, nowNs } from "../state/boot.ts";
import { ContainerFsStore, type IdmapTarget } from "../storage/container_fs.ts";
import { ImageVolumes } from "../storage/image_volumes.ts";
import { podUserNamespace, toHost, type UserNamespaceMapping } from "../pod/userns_mapping.ts";
import { ClaimedCreates } from "../util/claims.ts";
import { ContainerStore, type ContainerRecord } from "./container_store.ts";
import { fitExecOutput } from "./exec_output.ts";
import { HugetlbProbe } from "./cgroup_controllers.ts";
import { applyCdiEdits, requestedCdiDevices, resolveCdiDevices } from "./cdi.ts";
import { readProcessIdentity } from "./process_identity.ts";
import { handlerFeatures } from "./runtime_features.ts";
import { buildContainerSpec } from "./spec/build.ts";
import { resolveUser, secureJoin } from "./spec/user.ts";
import { runcUpdate } from "./runc_update.ts";
import { randomHex } from "../util/random_hex.ts";

const logger = log.with({ component: "container" });

/** The image volumes of one create: host source per CRI mount, and the images mounted. */
interface ImageVolumeMounts { sources: Map<Mount, string>; imageIds: string[] }

/** ExecSync output cap (CRI-O and dockershim use 16 MiB; CVE-2022-31030). */
export const EXEC_SYNC_MAX_OUTPUT = 16 * 1024 * 1024;

/** The longest delay setTimeout honours (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const SIGNAL_NAMES = Object.fromEntries(Object.entries(Signal).map(([k, v]) => [v, k])) as Record<number, string>;

export class ContainerService {
  readonly store: ContainerStore;
  readonly fs: ContainerFsStore;
  private readonly imageVolumes: ImageVolumes;
  private readonly creates: ClaimedCreates;
  /** Waiters for a container's exit (StopContainer). */
  private readonly exitWaiters = new Map<string, Set<() => void>>();
  /** Containers whose StartContainer is under way -> whether they exited meanwhile. */
  private readonly starting = new Map<string, boolean>();
  private readonly hugetlb = new HugetlbProbe();

  constructor(
    private readonly config: Config,
    db: Database,
    private readonly images: ImageService,
    private readonly pods: PodService,
    private readonly monitor: () => Promise<MonitorClient>,
    /** Whether a monitor runs already (so start-up does not start one for nothing). */
    private readonly monitorRunning: () => boolean = () => true,
  ) {
    this.store = new ContainerStore(db);
    this.fs = new ContainerFsStore(config.root, config.state);
    this.imageVolumes = new ImageVolumes(config.state);
    this.creates = new ClaimedCreates("container", (k) => this.store.byNameKey(k), (id, u) => this.store.setUnclaimed(id, u));
    images.usedBy = (imageId) => this.store.userOfImage(imageId) ?? (this.imageVolumes.isHeld(imageId) ? "being created" : undefined);
    pods.containers = {
      stopAll: async (podId, timeoutS) => {
        for (const c of this.store.list(podId)) await this.stop(c.id, timeoutS);
      },
      removeAll: async (podId) => {
        for (const c of this.store.list(podId)) await this.remove(c.id);
      },
    };
  }

  /** The OCI runtime binary and its state root for the pod's handler (also used by streaming exec). */
  runtimeFor(pod: PodRecord) {
    const handler = this.config.runtime.handlers[pod.runtimeHandler];
    if (!handler) throw failedPrecondition(`runtime handler "${pod.runtimeHandler}" of pod ${pod.id} is no longer configured`);
    return { path: handler.path, root: handler.root ?? join(this.config.state, "runtime", pod.runtimeHandler) };
  }

  // ---- create / start / stop / remove ----

  async create(podId: string, config: ContainerConfig, signal: AbortSignal): Promise<string> {
    const md = config.metadata;
    if (!md || !md.name) throw invalidArgument("CreateContainer: config.metadata.name is empty");
    if (!config.image?.image) throw invalidArgument("CreateContainer: config.image.image is empty");
    const pod = this.pods.get(podId);
    if (pod.state !== PodSandboxState.SANDBOX_READY) throw failedPrecondition(`CreateContainer: pod sandbox ${pod.id} is not ready`);
    const key = `${pod.id}_${md.name}_${md.attempt}`;
    return this.creates.run(key, signal, () => this.doCreate(key, pod, config));
  }

  private async doCreate(key: string, pod: PodRecord, config: ContainerConfig): Promise<string> {
    const image = this.images.find(config.image!.image);
    if (!image) throw notFound(`CreateContainer: image "${config.image!.image}" is not present; pull it first`);
    // A policy tightened since the pull applies to images already on the node.
    this.images.assertAllowed(image);
    const imageConfig = await this.images.imageConfig(image);
    const id = randomHex(32);
    const logPath = pod.config.log_directory && config.log_path ? join(pod.config.log_directory, config.log_path) : "";
    if (logPath && !isAbsolute(logPath)) throw invalidArgument(`CreateContainer: log path ${logPath} is not absolute`);
    const userns = await this.podUserNamespace(pod);
    let fs;
    try {
      fs = await this.fs.create(id, image.layers.map((l) => this.images.layers.path(l.chainID)), userns?.idmap);
    } catch (e) {
      userns?.close();
      await this.fs.remove(id);
      throw e;
    }
    const volumes: ImageVolumeMounts = { sources: new Map(), imageIds: [] };
    try {
      await this.mountImageVolumes(config, volumes);
      // In a pod user namespace every host-path volume is an id-mapped mount.
      const specConfig = userns ? { ...config, mounts: await this.idmapVolumes(id, config.mounts, userns.idmap) } : config;
      const sc = config.linux?.security_context;
      const user = await resolveUser(fs.rootfs, {
        runAsUser: sc?.run_as_user?.value ?? null,
        runAsUsername: sc?.run_as_username ?? "",
        runAsGroup: sc?.run_as_group?.value ?? null,
        imageUser: imageConfig.config?.User ?? "",
        supplementalGroups: sc?.supplemental_groups ?? [],
        strictSupplementalGroups: strictSupplementalGroups(sc?.supplemental_groups_policy, pod.config.linux?.security_context?.supplemental_groups_policy),
      });
      const files = this.pods.files(pod);
      const pidNs = await this.pidNamespaceFor(pod, config);
      const features = await handlerFeatures(pod.runtimeHandler, this.runtimeFor(pod).path);
      const spec = await buildContainerSpec({
        containerId: id,
        sandboxId: pod.id,
        config: specConfig,
        sandbox: pod.config,
        image: {
          user: imageConfig.config?.User ?? "",
          env: imageConfig.config?.Env ?? [],
          entrypoint: imageConfig.config?.Entrypoint ?? [],
          cmd: imageConfig.config?.Cmd ?? [],
          workingDir: imageConfig.config?.WorkingDir ?? "",
          stopSignal: imageConfig.config?.StopSignal ?? "",
        },
        rootfs: fs.rootfs,
        namespaces: { network: pod.namespaces.net, ipc: pod.namespaces.ipc, uts: pod.namespaces.uts, pid: pidNs, user: pod.namespaces.user },
        cgroupsPath: this.cgroupsPath(pod, id),
        hugetlbSupported: await this.hugetlbFor(pod, config.linux?.resources ?? null),
        user,
        hostname: podHostname(pod.config),
        sandboxFiles: files,
        seccompProfileRoot: join(this.config.root, "seccomp"),
        runtimeCanLowerOomScore: false,
        recursiveReadOnlyMounts: features.recursiveReadOnlyMounts,
        imageVolumeSources: volumes.sources,
      });
      await applyCdiEdits(spec, await resolveCdiDevices(requestedCdiDevices(config), this.config.cdi.specDirs));
      const bundle = dirname(fs.rootfs);
      await writeAtomic(join(bundle, "config.json"), JSON.stringify(spec));
      const rec: ContainerRecord = {
        id, podId: pod.id, nameKey: key, config, imageId: image.id, imageRef: config.image!.image,
        state: ContainerState.CONTAINER_CREATED, createdNs: nowNs(), startedNs: 0n, finishedNs: 0n, exitCode: 0,
        reason: "", message: "", logPath, unclaimed: true, bootId: bootId(), imageVolumes: volumes.imageIds,
      };
      if (logPath) await mkdir(dirname(logPath), { recursive: true, mode: 0o755 });
      const mon = await this.monitor();
      const created = await mon.create({ id, bundle, runtime: this.runtimeFor(pod), logPath, stdin: config.stdin, stdinOnce: config.stdin_once, tty: config.tty });
      mon.holdPipes(id);
      // runc has made the container's own copies of the volumes: the staged ones can go.
      if (userns) await this.fs.detachVolumes(id);
      const identity = await readProcessIdentity(created.pid, userns?.mapping);
      if (identity) rec.user = identity;
      else logger.warn("cannot read the identity of the container's first process", { container: id, pid: created.pid });
      this.store.insert(rec);
      // Recorded as a user now: a release for another container leaves the volumes mounted.
      for (const imageId of volumes.imageIds) this.imageVolumes.unhold(imageId);
      lifecycle.publish({ kind: "container-created", id, podId: pod.id });
      logger.info("container created", { container: id, pod: pod.id, name: key, image: image.id });
      return id;
    } catch (e) {
      await (await this.monitor()).delete(id).catch(() => {});
      await this.fs.remove(id);
      for (const imageId of volumes.imageIds) {
        this.imageVolumes.unhold(imageId);
        await this.releaseImageVolume(imageId);
      }
      throw e;
    } finally {
      userns?.close();
    }
  }

  /**
   * Mount the images of image volumes (KEP-4639) and resolve their image_sub_path; the
   * images stay held (see ImageVolumes.ensure) until the create ends.
   */
  private async mountImageVolumes(config: ContainerConfig, out: ImageVolumeMounts): Promise<void> {
    const roots = new Map<string, string>();
    for (const m of config.mounts) {
      const ref = m.image?.image ?? "";
      if (ref === "") continue;
      const what = `mount ${m.container_path}: image volume ${ref}`;
      const image = this.images.find(ref);
      if (!image) throw notFound(`CreateContainer: ${what} is not present; pull it first`);
      const sub = m.image_sub_path;
      if (sub.startsWith("/") || sub.split("/").includes("..") || sub.includes("\0")) {
        throw invalidArgument(`CreateContainer: ${what}: image_sub_path ${JSON.stringify(sub)} must be a relative path without ".."`);
      }
      let root = roots.get(image.id);
      if (root === undefined) {
        out.imageIds.push(image.id); // held from here on, even if the mount fails (the caller unholds)
        root = await this.imageVolumes.ensure(image.id, image.layers.map((l) => this.images.layers.path(l.chainID)));
        roots.set(image.id, root);
      }
      let source = root;
      if (sub !== "") {
        try {
          source = await secureJoin(root, sub, { refuseEscape: true });
          await stat(source);
        } catch (e) {
          if (e instanceof CribError) throw invalidArgument(`CreateContainer: ${what}: image_sub_path ${JSON.stringify(sub)}: ${e.message}`, e);
          if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") throw invalidArgument(`CreateContainer: ${what}: image_sub_path ${JSON.stringify(sub)} does not exist in the image`, e);
          throw e;
        }
      }
      out.sources.set(m, source);
    }
  }

  /**
   * The pod's user namespace, opened, with the host ids of its root; undefined for a pod
   * in the node's. The state dir becomes traversable (0711): runc's init, already the
   * namespace's root, looks the rootfs up by path.
   */
  private async podUserNamespace(pod: PodRecord): Promise<{ idmap: IdmapTarget; mapping: UserNamespaceMapping; close(): void } | undefined> {
    if (pod.namespaces.user === undefined) return undefined;
    const mapping = podUserNamespace(pod.config.linux?.security_context?.namespace_options?.userns_options, "pod sandbox config.linux.security_context");
    if (mapping === undefined) throw failedPrecondition(`pod sandbox ${pod.id} has a user namespace but no mapping in its config`);
    const st = await stat(this.config.state);
    if ((st.mode & 0o011) !== 0o011) {
      await chmod(this.config.state, (st.mode & 0o7777) | 0o011);
      logger.info("state dir made traversable (search only) for containers in user namespaces", { dir: this.config.state });
    }
    const fd = openSync(pod.namespaces.user, constants.O_RDONLY);
    return {
      idmap: { usernsFd: fd, rootUid: toHost(mapping.uids, 0), rootGid: toHost(mapping.gids, 0) },
      mapping,
      close: () => closeSync(fd),
    };
  }

  /** The CRI mounts with each host path replaced by an id-mapped bind mount of it (image volumes stay). */
  private async idmapVolumes(id: string, mounts: readonly Mount[], idmap: IdmapTarget): Promise<Mount[]> {
    const out: Mount[] = [];
    for (const [n, m] of mounts.entries()) {
      if ((m.image?.image ?? "") !== "" || !m.host_path.startsWith("/")) {
        out.push(m); // image volumes keep their object (the key of their source); bad paths fail in the spec builder
        continue;
      }
      try {
        out.push({ ...m, host_path: await this.fs.idmappedVolume(id, n, m.host_path, idmap) });
      } catch (e) {
        if (errnoCode(e) === "ENOENT") throw invalidArgument(`CreateContainer: mount ${m.container_path}: host path ${m.host_path} does not exist`, e);
        throw e;
      }
    }
    return out;
  }

  /** Unmount an image volume once no container uses it. */
  private async releaseImageVolume(imageId: string): Promise<void> {
    try {
      await this.imageVolumes.release(imageId, () => this.store.volumeUserOfImage(imageId) !== undefined);
    } catch (e) {
      logger.warn("cannot unmount an image volume no container uses", { image: imageId, error: e });
    }
  }

  /** The pod's shared PID namespace, or for TARGET mode (ephemeral containers) the target container's. */
  private async pidNamespaceFor(pod: PodRecord, config: ContainerConfig): Promise<string | undefined> {
    const opts = config.linux?.security_context?.namespace_options;
    if (opts?.pid !== NamespaceMode.TARGET) return pod.namespaces.pid;
    const target = this.get(opts.target_id);
    if (target.podId !== pod.id) throw invalidArgument(`CreateContainer: target container ${target.id} is not in pod ${pod.id}`);
    const st = await (await this.monitor()).state(target.id);
    if (st.status !== "running" || st.pid <= 0) throw failedPrecondition(`CreateContainer: target container ${target.id} is not running`);
    return `/proc/${st.pid}/ns/pid`;
  }

  /** Whether hugepage limits can be applied to the pod's containers (only asked when some are set). */
  private async hugetlbFor(pod: PodRecord, resources: LinuxContainerResources | null): Promise<boolean> {
    if (!resources || resources.hugepage_limits.length === 0) return true;
    const parent = this.config.runtime.cgroupDriver === "systemd" ? "" : pod.config.linux?.cgroup_parent || "/crib";
    return this.hugetlb.available(parent);
  }

  private cgroupsPath(pod: PodRecord, id: string): string {
    const parent = pod.config.linux?.cgroup_parent ?? "";
    if (this.config.runtime.cgroupDriver === "systemd") return `${parent || "system.slice"}:crib:${id}`;
    return `${parent || "/crib"}/crib-${id}`;
  }

  /** Look a container up by full id or unique prefix; undefined when there is none. */
  find(idOrPrefix: string): ContainerRecord | undefined {
    if (!idOrPrefix) throw invalidArgument("container id is empty");
    const exact = this.store.get(idOrPrefix);
    if (exact) return exact;
    const matches = this.store.byIdPrefix(idOrPrefix);
    if (matches.length > 1) throw invalidArgument(`container id prefix "${idOrPrefix}" is ambiguous (${matches.length} containers)`);
    return matches[0];
  }

  get(idOrPrefix: string): ContainerRecord {
    const c = this.find(idOrPrefix);
    if (!c) throw notFound(`container "${idOrPrefix}" not found`);
    return c;
  }

  async start(idOrPrefix: string): Promise<void> {
    const c = this.get(idOrPrefix);
    if (c.state !== ContainerState.CONTAINER_CREATED) throw failedPrecondition(`StartContainer: container ${c.id} is ${stateName(c.state)}, not created`);
    // An exit reported while the start is under way is announced after STARTED, not before.
    this.starting.set(c.id, false);
    try {
      await this.startOnMonitor(c);
    } finally {
      const exitedMeanwhile = this.starting.get(c.id) === true;
      this.starting.delete(c.id);
      if (exitedMeanwhile) lifecycle.publish({ kind: "container-exited", id: c.id, podId: c.podId });
    }
  }

  private async startOnMonitor(c: ContainerRecord): Promise<void> {
    const st = await (await this.monitor()).start(c.id);
    // A container that exits at once may already be reported exited.
    // The daemon's clock, as for created_at: the monitor's start time comes
    // from /proc in clock ticks and may read a little earlier than creation.
    const cur = this.store.get(c.id);
    if (cur?.state === ContainerState.CONTAINER_CREATED) {
      this.store.setStarted(c.id, ContainerState.CONTAINER_RUNNING, nowNs());
    } else if (cur && cur.startedNs === 0n) {
      // It exited before start() returned: it did start, no later than it finished.
      const now = nowNs();
      this.store.setStarted(c.id, cur.state, cur.finishedNs > 0n && cur.finishedNs < now ? cur.finishedNs : now);
    }
    lifecycle.publish({ kind: "container-started", id: c.id, podId: c.podId });
    if (st.exit) this.recordExit(c.id, st.exit);
    logger.info("container started", { container: c.id });
  }

  /** Stop signal, then SIGKILL after `timeoutS`. Idempotent: a stopped or absent container is fine (CRI v1). */
  async stop(idOrPrefix: string, timeoutS: number): Promise<void> {
    const c = this.find(idOrPrefix);
    if (!c || c.state === ContainerState.CONTAINER_EXITED) return;
    if (c.state === ContainerState.CONTAINER_CREATED) {
      // Never started: nothing runs yet; record it as exited.
      await this.signal(c.id, "SIGKILL");
      this.recordExit(c.id, { exitCode: 0, exitedAtNs: nowNs().toString(), reason: "Completed", message: "stopped before it started" });
      return;
    }
    const exited = this.waitExit(c.id);
    if (timeoutS > 0) {
      await this.signal(c.id, await this.stopSignal(c));
      if (await Promise.race([exited.then(() => true), Bun.sleep(timeoutS * 1000).then(() => false)])) return;
    }
    await this.signal(c.id, "SIGKILL", true);
    await Promise.race([exited, Bun.sleep(10_000)]);
    await this.refresh(c.id);
    // Never report a stop that did not happen: the kubelet retries an error, not a success.
    if (this.store.get(c.id)?.state === ContainerState.CONTAINER_RUNNING) {
      throw unavailable(`StopContainer: container ${c.id} was sent SIGKILL but has not exited yet; retry`);
    }
  }

  /**
   * Signal a container through the monitor; when the connection in hand dies (the
   * monitor is being replaced), again on a fresh one. False if it could not be sent.
   */
  private async signal(id: string, signal: string, all = false): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await (await this.monitor()).kill(id, signal, all);
        return true;
      } catch (e) {
        if (e instanceof CribError && e.kind === "unavailable" && attempt < 5) {
          await Bun.sleep(100 * attempt);
          continue;
        }
        logger.debug("signal not delivered", { container: id, signal, error: e });
        return false;
      }
    }
  }

  /** The CRI's stop_signal, else the image's StopSignal, else SIGTERM. */
  private async stopSignal(c: ContainerRecord): Promise<string> {
    if (c.config.stop_signal !== Signal.RUNTIME_DEFAULT) return SIGNAL_NAMES[c.config.stop_signal] ?? "SIGTERM";
    const image = this.images.find(c.imageId);
    const fromImage = image ? (await this.images.imageConfig(image)).config?.StopSignal : undefined;
    if (!fromImage) return "SIGTERM";
    return /^\d+$/.test(fromImage) || fromImage.startsWith("SIG") ? fromImage : `SIG${fromImage}`;
  }

  async remove(idOrPrefix: string): Promise<void> {
    const c = this.find(idOrPrefix);
    if (!c) return;
    if (c.state === ContainerState.CONTAINER_RUNNING) await this.stop(c.id, 0);
    const mon = await this.monitor();
    // The container has exited: the runtime's delete (a runc run, ~6 ms) and the removal
    // of its files do not depend on each other. The record goes last, so a crash in
    // between leaves a container the kubelet removes again (both steps are idempotent).
    await Promise.all([mon.delete(c.id).then(() => mon.releasePipes(c.id)), this.fs.remove(c.id)]);
    this.store.remove(c.id);
    for (const imageId of c.imageVolumes) await this.releaseImageVolume(imageId);
    lifecycle.publish({ kind: "container-removed", id: c.id, podId: c.podId });
    logger.info("container removed", { container: c.id });
  }

  // ---- exits ----

  /** Called for every exit the monitor reports (and at start-up for missed ones). */
  recordExit(id: string, exit: ExitInfo): void {
    const c = this.store.get(id);
    if (!c || c.state === ContainerState.CONTAINER_EXITED) return;
    // created <= started <= finished, whatever clock each came from.
    const floor = c.startedNs > c.createdNs ? c.startedNs : c.createdNs;
    const finished = BigInt(exit.exitedAtNs);
    this.store.setExited(id, {
      state: ContainerState.CONTAINER_EXITED,
      finishedNs: finished > floor ? finished : floor,
      exitCode: exit.exitCode,
      reason: exit.reason,
      message: exit.message ?? "",
    });
    if (this.starting.has(id)) this.starting.set(id, true);
    else lifecycle.publish({ kind: "container-exited", id, podId: c.podId });
    for (const w of this.exitWaiters.get(id) ?? []) w();
    this.exitWaiters.delete(id);
    logger.info("container exited", { container: id, exitCode: exit.exitCode, reason: exit.reason });
  }

  private waitExit(id: string): Promise<void> {
    return new Promise((resolve) => {
      let set = this.exitWaiters.get(id);
      if (!set) this.exitWaiters.set(id, (set = new Set()));
      set.add(resolve);
    });
  }

  /** Ask the monitor for the truth about a container and record it. */
  async refresh(id: string): Promise<void> {
    const c = this.store.get(id);
    if (!c || c.state === ContainerState.CONTAINER_EXITED) return;
    let st;
    try {
      st = await (await this.monitor()).state(id);
    } catch (e) {
      if (e instanceof CribError && e.kind === "not_found") {
        this.recordExit(id, { exitCode: 255, exitedAtNs: nowNs().toString(), reason: "Unknown", message: "the monitor has no record of this container" });
        return;
      }
      throw e;
    }
    if (st.exit) this.recordExit(id, st.exit);
    else if (st.status === "running" && c.state === ContainerState.CONTAINER_CREATED) {
      const started = st.startedAtNs ? BigInt(st.startedAtNs) : nowNs();
      this.store.setStarted(id, ContainerState.CONTAINER_RUNNING, started > c.createdNs ? started : c.createdNs);
    }
  }

  // ---- other RPCs ----

  async execSync(idOrPrefix: string, cmd: string[], timeoutS: number) {
    const c = this.get(idOrPrefix);
    if (cmd.length === 0) throw invalidArgument("ExecSync: cmd is empty");
    const nul = cmd.findIndex((a) => a.includes("\0"));
    if (nul >= 0) throw invalidArgument(`ExecSync: cmd[${nul}] contains a NUL byte`);
    if (c.state !== ContainerState.CONTAINER_RUNNING) throw failedPrecondition(`ExecSync: container ${c.id} is ${stateName(c.state)}, not running`);
    // Timers hold at most 2^31-1 ms (24.8 days; a longer one fires at once): longer means no limit.
    const timeoutMs = timeoutS > 0 && timeoutS * 1000 < MAX_TIMER_MS ? timeoutS * 1000 : 0;
    const r = await (await this.monitor()).exec({ id: c.id, args: cmd, timeoutMs, maxOutputBytes: EXEC_SYNC_MAX_OUTPUT });
    if (r.timedOut) throw deadlineExceeded(`ExecSync: command ${JSON.stringify(cmd)} in container ${c.id} timed out after ${timeoutS}s`);
    const fit = fitExecOutput(r.stdout, r.stderr);
    return { ...r, stdout: fit.stdout, stderr: fit.stderr, truncated: r.truncated || fit.cut };
  }

  async reopenLog(idOrPrefix: string): Promise<void> {
    const c = this.get(idOrPrefix);
    if (c.state !== ContainerState.CONTAINER_RUNNING) throw failedPrecondition(`ReopenContainerLog: container ${c.id} is not running`);
    // No log path, no file: nothing to reopen (containerd succeeds the same way).
    if (c.logPath === "") return;
    await (await this.monitor()).reopenLog(c.id);
  }

  async updateResources(idOrPrefix: string, resources: LinuxContainerResources | null): Promise<void> {
    const c = this.get(idOrPrefix);
    if (!resources) return;
    if (c.state === ContainerState.CONTAINER_EXITED) throw failedPrecondition(`UpdateContainerResources: container ${c.id} has exited`);
    const pod = this.pods.get(c.podId);
    await runcUpdate(this.runtimeFor(pod), c.id, resources, await this.hugetlbFor(pod, resources));
  }

  list(): ContainerRecord[] {
    return this.store.list();
  }

  /**
   * Start-up: after a daemon restart the monitor tells what happened while we
   * were down; after a reboot nothing survived.
   */
  async recover(): Promise<void> {
    await this.removeOrphans();
    // Image volumes a crash left mounted for a container that was never recorded.
    for (const imageId of await this.imageVolumes.mounted()) await this.releaseImageVolume(imageId);
    await this.resync();
  }

  /** Re-read every live container from the monitor (start-up, and after a monitor reconnect). */
  async resync(): Promise<void> {
    const boot = bootId();
    for (const c of this.store.list()) {
      if (c.state === ContainerState.CONTAINER_EXITED) continue;
      if (c.bootId !== boot) {
        this.recordExit(c.id, { exitCode: 255, exitedAtNs: nowNs().toString(), reason: "Unknown", message: "the node rebooted while the container was running" });
        continue;
      }
      await this.refresh(c.id);
      try {
        (await this.monitor()).holdPipes(c.id);
      } catch (e) {
        logger.warn("cannot hold the container's output pipes", { container: c.id, error: e });
      }
    }
  }

  /**
   * A crash between mounting a container's rootfs and recording it leaves
   * directories (and a mount) no record names: remove them.
   */
  private async removeOrphans(): Promise<void> {
    const known = new Set(this.store.list().map((c) => c.id));
    const onDisk = new Set<string>();
    for (const dir of [join(this.config.root, "containers"), join(this.config.state, "containers")]) {
      for (const name of await readdir(dir).catch(() => [] as string[])) if (/^[0-9a-f]{64}$/.test(name)) onDisk.add(name);
    }
    for (const id of onDisk) {
      if (known.has(id)) continue;
      logger.warn("removing a container left by a crash before it was recorded", { container: id });
      if (this.monitorRunning()) await (await this.monitor()).delete(id).catch(() => {});
      await this.fs.remove(id);
    }
  }
}

/**
 * SupplementalGroupsPolicy (KEP-3619): Strict when the container or its pod asks for it
 * (kubelets copy the pod's policy into each container; an older one sets only the pod's).
 */
function strictSupplementalGroups(container: number | undefined, pod: number | undefined): boolean {
  for (const [what, v] of [["linux.security_context", container], ["the pod's linux.security_context", pod]] as const) {
    if (v !== undefined && v !== SupplementalGroupsPolicy.Merge && v !== SupplementalGroupsPolicy.Strict) {
      throw invalidArgument(`CreateContainer: ${what}.supplemental_groups_policy ${v} is neither Merge (0) nor Strict (1)`);
    }
  }
  return container === SupplementalGroupsPolicy.Strict || pod === SupplementalGroupsPolicy.Strict;
}

export function stateName(s: number): string {
  return ["created", "running", "exited", "unknown"][s] ?? `state ${s}`;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}
