// Containers: rootfs, OCI spec, and the monitor that runs them under runc.
// The daemon holds no container: the monitor does, and reports exits here.
import type { Database } from "bun:sqlite";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import type { Config } from "../config/config.ts";
import { ContainerState, NamespaceMode, PodSandboxState, Signal, type ContainerConfig, type LinuxContainerResources } from "../protocol/types.ts";
import { CribError, deadlineExceeded, failedPrecondition, invalidArgument, notFound, unavailable } from "../errors.ts";
import type { ImageService } from "../image/image_service.ts";
import { log } from "../log/logger.ts";
import type { ExitInfo, MonitorClient } from "../monitor/client.ts";
import type { PodService } from "../pod/pod_service.ts";
import type { PodRecord } from "../pod/pod_store.ts";
import { lifecycle } from "../events/bus.ts";
import { bootId, nowNs } from "../state/boot.ts";
import { ContainerFsStore } from "../storage/container_fs.ts";
import { ClaimedCreates } from "../util/claims.ts";
import { ContainerStore, type ContainerRecord } from "./container_store.ts";
import { fitExecOutput } from "./exec_output.ts";
import { buildContainerSpec } from "./spec/build.ts";
import { resolveUser } from "./spec/user.ts";
import { runcUpdate } from "./runc_update.ts";

const logger = log.with({ component: "container" });

/** ExecSync output cap (CRI-O and dockershim use 16 MiB; CVE-2022-31030). */
export const EXEC_SYNC_MAX_OUTPUT = 16 * 1024 * 1024;

/** The longest delay setTimeout honours (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const SIGNAL_NAMES = Object.fromEntries(Object.entries(Signal).map(([k, v]) => [v, k])) as Record<number, string>;

export class ContainerService {
  readonly store: ContainerStore;
  readonly fs: ContainerFsStore;
  private readonly creates: ClaimedCreates;
  /** Waiters for a container's exit (StopContainer). */
  private readonly exitWaiters = new Map<string, Set<() => void>>();
  /** Containers whose StartContainer is under way -> whether they exited meanwhile. */
  private readonly starting = new Map<string, boolean>();

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
    this.creates = new ClaimedCreates("container", (k) => this.store.byNameKey(k), (id, u) => this.store.setUnclaimed(id, u));
    images.usedBy = (imageId) => this.store.userOfImage(imageId);
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
    const imageConfig = await this.images.imageConfig(image);
    const id = randomBytes(32).toString("hex");
    const logPath = pod.config.log_directory && config.log_path ? join(pod.config.log_directory, config.log_path) : "";
    if (logPath && !isAbsolute(logPath)) throw invalidArgument(`CreateContainer: log path ${logPath} is not absolute`);
    const fs = await this.fs.create(id, image.layers.map((l) => this.images.layers.path(l.chainID)));
    try {
      const sc = config.linux?.security_context;
      const user = await resolveUser(fs.rootfs, {
        runAsUser: sc?.run_as_user?.value ?? null,
        runAsUsername: sc?.run_as_username ?? "",
        runAsGroup: sc?.run_as_group?.value ?? null,
        imageUser: imageConfig.config?.User ?? "",
        supplementalGroups: sc?.supplemental_groups ?? [],
        strictSupplementalGroups: sc?.supplemental_groups_policy === 1,
      });
      const files = this.pods.files(pod);
      const pidNs = await this.pidNamespaceFor(pod, config);
      const spec = await buildContainerSpec({
        containerId: id,
        sandboxId: pod.id,
        config,
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
        namespaces: { network: pod.namespaces.net, ipc: pod.namespaces.ipc, uts: pod.namespaces.uts, pid: pidNs },
        cgroupsPath: this.cgroupsPath(pod, id),
        user,
        hostname: pod.config.hostname || pod.config.metadata?.name || "",
        sandboxFiles: files,
        seccompProfileRoot: join(this.config.root, "seccomp"),
        runtimeCanLowerOomScore: false,
      });
      const bundle = dirname(fs.rootfs);
      await writeAtomic(join(bundle, "config.json"), JSON.stringify(spec));
      const rec: ContainerRecord = {
        id, podId: pod.id, nameKey: key, config, imageId: image.id, imageRef: config.image!.image,
        state: ContainerState.CONTAINER_CREATED, createdNs: nowNs(), startedNs: 0n, finishedNs: 0n, exitCode: 0,
        reason: "", message: "", logPath, unclaimed: true, bootId: bootId(),
      };
      if (logPath) await mkdir(dirname(logPath), { recursive: true, mode: 0o755 });
      const mon = await this.monitor();
      await mon.create({ id, bundle, runtime: this.runtimeFor(pod), logPath, stdin: config.stdin, stdinOnce: config.stdin_once, tty: config.tty });
      mon.holdPipes(id);
      this.store.insert(rec);
      lifecycle.publish({ kind: "container-created", id, podId: pod.id });
      logger.info("container created", { container: id, pod: pod.id, name: key, image: image.id });
      return id;
    } catch (e) {
      await (await this.monitor()).delete(id).catch(() => {});
      await this.fs.remove(id);
      throw e;
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
    await mon.delete(c.id);
    mon.releasePipes(c.id);
    await this.fs.remove(c.id);
    this.store.remove(c.id);
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
    await runcUpdate(this.runtimeFor(pod), c.id, resources);
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

export function stateName(s: number): string {
  return ["created", "running", "exited", "unknown"][s] ?? `state ${s}`;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}
