// The monitor's operations on its containers, independent of the socket protocol.

import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { CribError, errnoCode, errorMessage, failedPrecondition, internal, invalidArgument, notFound, unavailable } from "../errors.ts";
import { log } from "../log/logger.ts";
import { realtimeNs } from "../sys/process.ts";
import { ConsoleSocket } from "../sys/scm_rights.ts";
import { Container, type AttachListener } from "./container.ts";
import { execSync } from "./exec.ts";
import { openFifoWriter, openStdinForContainer, closeFd } from "./pipes.ts";
import { isPidNamespaceInit, readProcStat } from "./proc_stat.ts";
import { containerDir, isValidContainerId, type AttachInfo, type ContainerState, type CreateRequest, type ExecRequest, type ExecResult, type ExitInfo } from "./protocol.ts";
import { Reaper } from "./reaper.ts";
import { runcCreate, runcDelete, runcKill, runcStart, runcState, runtimeName } from "./runc.ts";
import { readState, type PersistedContainer } from "./state_store.ts";
import type { StreamName } from "./cri_log.ts";
import { randomHex } from "../util/random_hex.ts";

export type ExitListener = (id: string, exit: ExitInfo) => void;

/** fds a re-exec'd monitor inherited, per container. */
export type InheritedPipes = Record<string, Partial<Record<StreamName, number>>>;

/** How long runc's terminal may take to arrive on the console socket after `runc create` returned. */
const CONSOLE_WAIT_MS = 5_000;

const SIGNAL_RE = /^(SIG)?[A-Z0-9+-]{1,16}$|^[0-9]{1,2}$/;

export class Monitor {
  private readonly containers = new Map<string, Container>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly exitListeners = new Set<ExitListener>();
  /** Runtime deletes started at exit: true once runc forgot the container. */
  private readonly runtimeDeletes = new Map<string, Promise<boolean>>();
  private creating = 0;
  private inflight = 0;
  private draining = false;
  private readonly log = log.with({ component: "monitor" });
  readonly reaper: Reaper;

  constructor(readonly stateDir: string) {
    this.reaper = new Reaper({
      watched: () => [...this.containers.values()].filter((c) => !c.hasExited && c.watch !== "none"),
      createsInFlight: () => this.creating,
    });
  }

  onExit(fn: ExitListener): () => void {
    this.exitListeners.add(fn);
    return () => this.exitListeners.delete(fn);
  }

  count(): number {
    return this.containers.size;
  }

  /** Runs an op unless an upgrade is draining; counts it so the upgrade can wait for it. */
  async op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.draining) throw unavailable("the monitor is upgrading; retry in a moment");
    this.inflight++;
    try {
      return await fn();
    } finally {
      this.inflight--;
    }
  }

  /** Refuse new ops and wait (bounded) for the running ones. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    const deadline = performance.now() + timeoutMs; // monotonic: the wall clock may jump
    while (this.inflight > 0 && performance.now() < deadline) await Bun.sleep(20);
    return this.inflight === 0;
  }

  undrain(): void {
    this.draining = false;
  }

  /** Serializes the ops on one container id. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  private get(id: string): Container {
    if (!isValidContainerId(id)) throw invalidArgument(`invalid container id ${JSON.stringify(id)}`);
    const c = this.containers.get(id);
    if (c === undefined) throw notFound(`container ${id} is not known to the monitor`);
    return c;
  }

  private emitExit(c: Container, exit: ExitInfo): void {
    for (const fn of this.exitListeners) {
      try {
        fn(c.id, exit);
      } catch (err) {
        this.log.error("exit listener failed", { err: errorMessage(err) });
      }
    }
    // The runtime's delete (a runc run, ~6 ms) starts now, as containerd deletes a task
    // on its exit, rather than on the critical path of RemoveContainer, which awaits it.
    // The exit is on disk already; a delete that fails here is tried again there.
    const rt = c.st.runtime;
    this.runtimeDeletes.set(
      c.id,
      runcDelete(rt, c.id).then(
        () => true,
        (err: unknown) => {
          this.log.warn("deleting an exited container from the runtime failed; RemoveContainer tries again", { container: c.id, err: errorMessage(err) });
          return false;
        },
      ),
    );
  }

  // --- recovery -----------------------------------------------------------------------

  /**
   * Load every container under DIR/monitor after a restart or re-exec: reopen (or take
   * over) its FIFOs and log, and watch its init again. An init that is gone without a
   * recorded exit exited while no monitor was watching.
   */
  async recover(inherited: InheritedPipes): Promise<void> {
    const root = `${this.stateDir}/monitor`;
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {
      return;
    }
    for (const name of names) {
      if (!isValidContainerId(name)) continue;
      const dir = containerDir(this.stateDir, name);
      const st = readState(dir);
      if (st === undefined || st.id !== name) {
        // A create that died before its first save: nothing runs that we know of.
        this.log.warn("removing a container dir without valid state", { dir });
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      if (st.pid <= 0) {
        // A create that died half-way: undo it, so the daemon's retry starts clean.
        this.log.warn("undoing a create that did not finish", { container: name });
        await runcDelete(st.runtime, name).catch((err: unknown) => this.log.warn("runc delete failed", { container: name, err: errorMessage(err) }));
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      try {
        await this.adopt(dir, st, inherited[name] ?? {});
      } catch (err) {
        this.log.error("recovering a container failed", { container: name, err: errorMessage(err) });
      }
    }
  }

  private async adopt(dir: string, st: PersistedContainer, fds: Partial<Record<StreamName, number>>): Promise<void> {
    const c = new Container(dir, st, (cc, exit) => this.emitExit(cc, exit));
    this.containers.set(st.id, c);
    try {
      c.openLog();
    } catch (err) {
      this.log.error("cannot open the container log; output is not recorded until ReopenContainerLog succeeds", { container: st.id, err: errorMessage(err) });
    }
    c.attachOutput(fds);
    if (st.exit !== undefined) return;
    c.locateOomCounter();
    this.reaper.classify(c);
    if (c.watch === "none") {
      c.recordUnknownExit("exited while no monitor was watching");
      return;
    }
    c.holdStdin();
    if (st.startedAtNs === undefined) {
      // We may have died between `runc start` and saving it.
      const rs = await runcState(st.runtime, st.id).catch(() => null);
      if (rs?.status === "running") {
        st.startedAtNs = realtimeNs().toString();
        c.persist();
      }
    }
    this.log.info("re-adopted container", { container: st.id, pid: st.pid, watch: c.watch });
  }

  // --- operations -----------------------------------------------------------------------

  async create(req: CreateRequest): Promise<ContainerState> {
    validateCreate(req);
    return this.locked(req.id, async () => {
      const existing = this.containers.get(req.id);
      if (existing !== undefined) return existing.view();
      this.creating++;
      try {
        return await this.doCreate(req);
      } finally {
        this.creating--;
      }
    });
  }

  private async doCreate(req: CreateRequest): Promise<ContainerState> {
    const dir = containerDir(this.stateDir, req.id);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st: PersistedContainer = {
      version: 1,
      id: req.id,
      bundle: req.bundle,
      runtime: req.runtime,
      logPath: req.logPath,
      stdin: req.stdin,
      stdinOnce: req.stdinOnce,
      tty: req.tty,
      pid: 0,
      createdAtNs: realtimeNs().toString(),
    };
    const c = new Container(dir, st, (cc, exit) => this.emitExit(cc, exit));
    const fds: number[] = [];
    let consoleSock: ConsoleSocket | undefined;
    try {
      c.openLog();
      c.makeFifos();
      c.persist();
      const pidFile = `${dir}/pid`;
      if (req.tty !== bundleWantsTerminal(req.bundle)) {
        throw invalidArgument(`create ${req.id}: tty is ${req.tty} but process.terminal in ${req.bundle}/config.json is ${!req.tty}`);
      }
      if (req.tty) {
        // runc hands the pty master over the console socket; the monitor keeps it,
        // reads it as the container's only output stream and writes stdin into it.
        // (The socket lives in the state dir: container dirs are too deep for sun_path.)
        consoleSock = ConsoleSocket.listen(`${this.stateDir}/console-${randomHex(6)}.sock`);
        await runcCreate(req.runtime, req.id, req.bundle, pidFile, `${dir}/runc.log`, { stdin: "ignore", stdout: "ignore", stderr: "ignore" }, consoleSock.path);
        const term = await consoleSock.receive({ timeoutMs: CONSOLE_WAIT_MS }).catch((err: unknown) => {
          throw internal(`${runtimeName(req.runtime)} create of TTY container ${req.id} sent no terminal: ${errorMessage(err)}`, err);
        });
        c.setTerminal(term.fd);
        c.attachOutput();
      } else {
        c.attachOutput();
        const stdout = openFifoWriter(c.paths.stdout);
        fds.push(stdout);
        const stderr = openFifoWriter(c.paths.stderr);
        fds.push(stderr);
        let stdin: number | "ignore" = "ignore";
        if (req.stdin) {
          stdin = openStdinForContainer(c.paths.stdin);
          fds.push(stdin);
        }
        await runcCreate(req.runtime, req.id, req.bundle, pidFile, `${dir}/runc.log`, { stdin, stdout, stderr });
        for (const fd of fds.splice(0)) closeFd(fd);
      }
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      if (!Number.isInteger(pid) || pid <= 0) throw internal(`${runtimeName(req.runtime)} create of container ${req.id} wrote no valid pid to ${pidFile}`);
      st.pid = pid;
      const ps = readProcStat(pid);
      if (ps !== undefined) st.pidStartTime = ps.startTime;
      c.watch = ps?.ppid === process.pid ? "child" : ps === undefined ? "none" : "adopted";
      c.locateOomCounter();
      c.holdStdin();
      c.persist();
      this.containers.set(req.id, c);
      this.log.info("container created", { container: req.id, pid, watch: c.watch });
      if (c.watch === "none") c.recordUnknownExit("the container's init exited before the monitor could watch it");
      else this.reaper.sweep();
      return c.view();
    } catch (err) {
      for (const fd of fds) closeFd(fd);
      await runcDelete(req.runtime, req.id).catch(() => undefined);
      await c.release();
      rmSync(dir, { recursive: true, force: true });
      throw err instanceof CribError ? err : internal(`create container ${req.id}: ${errorMessage(err)}`, err);
    } finally {
      consoleSock?.close();
    }
  }

  async start(id: string): Promise<ContainerState> {
    return this.locked(id, async () => {
      const c = this.get(id);
      if (c.st.startedAtNs !== undefined) return c.view();
      if (c.hasExited) throw failedPrecondition(`container ${id} exited before it was started`);
      await runcStart(c.st.runtime, id);
      c.st.startedAtNs = realtimeNs().toString();
      c.persist();
      this.log.info("container started", { container: id, pid: c.st.pid });
      return c.view();
    });
  }

  async kill(id: string, signal: string, all: boolean): Promise<void> {
    if (!SIGNAL_RE.test(signal)) throw invalidArgument(`invalid signal ${JSON.stringify(signal)}`);
    const c = this.get(id);
    if (c.hasExited) return;
    if (this.killDirectly(c, signal, all)) return;
    try {
      await runcKill(c.st.runtime, id, signal, all);
    } catch (err) {
      // Exited between our check and runc's: nothing left to signal.
      if (err instanceof CribError && (err.kind === "failed_precondition" || err.kind === "not_found")) return;
      throw err;
    }
  }

  /**
   * Signal the init with kill(2) instead of `runc kill` (a Go start-up, ~5 ms of every
   * StopContainer) where that is the same thing: the init is our child and not yet
   * reaped, so its pid cannot name another process (we reap on this thread, and nothing
   * is awaited between the check and the kill). `all` (runc kill --all) is the same only
   * for SIGKILL of a PID namespace's init: the kernel then kills the whole namespace.
   * A container in its pod's or the host's PID namespace, an adopted init, or a signal
   * Bun does not know by name goes through the runtime. False: not sent here.
   */
  private killDirectly(c: Container, signal: string, all: boolean): boolean {
    if (c.watch !== "child" || c.st.pid <= 0) return false;
    const sig: string | number = /^[0-9]+$/.test(signal) ? Number(signal) : signal.startsWith("SIG") ? signal : `SIG${signal}`;
    if (all && !((sig === "SIGKILL" || sig === 9) && isPidNamespaceInit(c.st.pid))) return false;
    try {
      process.kill(c.st.pid, sig);
    } catch (err) {
      if (errnoCode(err) === "ESRCH") return true; // exited; the reaper reports it
      return false; // a signal Bun does not know by name (SIGRTMIN+3): runc knows it
    }
    return true;
  }

  state(id: string): ContainerState {
    return this.get(id).view();
  }

  list(): ContainerState[] {
    return [...this.containers.values()].map((c) => c.view());
  }

  async exec(req: ExecRequest): Promise<ExecResult> {
    validateExec(req);
    const c = this.get(req.id);
    if (c.hasExited) throw failedPrecondition(`container ${req.id} is not running`);
    const pidFile = `${c.dir}/exec-${process.hrtime.bigint()}.pid`;
    return execSync(c.st.runtime, req, pidFile);
  }

  reopenLog(id: string): void {
    this.get(id).reopenLog();
  }

  closeStdin(id: string): void {
    this.get(id).closeStdin();
  }

  /** Get a copy of a container's output from now on (CRI Attach); `detach` stops it. */
  attach(id: string, l: AttachListener): { info: AttachInfo; detach: () => void } {
    const c = this.get(id);
    const detach = c.attach(l);
    return { info: { tty: c.st.tty, stdin: c.st.stdin, stdinOnce: c.st.stdinOnce, ended: c.ended }, detach };
  }

  async writeStdin(id: string, data: Uint8Array): Promise<void> {
    await this.get(id).writeStdin(data);
  }

  resize(id: string, width: number, height: number): void {
    if (![width, height].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff)) throw invalidArgument(`resize ${id}: width and height must be integers in 0..65535`);
    this.get(id).resize(width, height);
  }

  async delete(id: string): Promise<void> {
    if (!isValidContainerId(id)) throw invalidArgument(`invalid container id ${JSON.stringify(id)}`);
    return this.locked(id, async () => {
      const c = this.containers.get(id);
      const dir = containerDir(this.stateDir, id);
      if (c === undefined) {
        // Maybe a dir from a crashed create; runc state went with it.
        rmSync(dir, { recursive: true, force: true });
        return;
      }
      const early = this.runtimeDeletes.get(id);
      if (!(await early)) await runcDelete(c.st.runtime, id);
      this.runtimeDeletes.delete(id);
      c.deleted = true;
      this.containers.delete(id);
      await c.release();
      rmSync(dir, { recursive: true, force: true });
      this.log.info("container deleted", { container: id });
    });
  }

  /** Stop reading (keeping the fds) before a re-exec; returns what the new image needs. */
  async handOver(): Promise<InheritedPipes> {
    this.reaper.stop();
    const pipes: InheritedPipes = {};
    for (const c of this.containers.values()) {
      await c.stopReaders();
      pipes[c.id] = c.outputFds();
      c.persist();
    }
    return pipes;
  }

  /** Undo handOver() after a failed execve. */
  resume(): void {
    for (const c of this.containers.values()) c.attachOutput();
    this.reaper.start();
  }
}

/** process.terminal of the bundle's OCI spec (runc needs a console socket exactly then). */
function bundleWantsTerminal(bundle: string): boolean {
  try {
    const spec = JSON.parse(readFileSync(`${bundle}/config.json`, "utf8")) as { process?: { terminal?: unknown } };
    return spec.process?.terminal === true;
  } catch {
    return false; // runc reports a missing or broken spec itself
  }
}

function validateCreate(req: CreateRequest): void {
  if (typeof req !== "object" || req === null) throw invalidArgument("create: missing request");
  if (!isValidContainerId(req.id)) throw invalidArgument(`create: invalid container id ${JSON.stringify(req.id)}`);
  if (typeof req.bundle !== "string" || !req.bundle.startsWith("/") || req.bundle.includes("\0")) {
    throw invalidArgument(`create ${req.id}: bundle must be an absolute path, got ${JSON.stringify(req.bundle)}`);
  }
  // "" (the CRI's empty log_path): no log file; the output is still drained.
  const lp: unknown = req.logPath;
  if (typeof lp !== "string" || (lp !== "" && !lp.startsWith("/")) || lp.includes("\0")) {
    throw invalidArgument(`create ${req.id}: logPath must be an absolute path or "" (no log file), got ${JSON.stringify(lp)}`);
  }
  const rt = req.runtime as unknown;
  if (typeof rt !== "object" || rt === null) throw invalidArgument(`create ${req.id}: missing runtime`);
  const r = rt as Record<string, unknown>;
  if (typeof r.path !== "string" || r.path === "" || typeof r.root !== "string" || !r.root.startsWith("/")) {
    throw invalidArgument(`create ${req.id}: runtime needs a path and an absolute root`);
  }
  for (const k of ["stdin", "stdinOnce", "tty"] as const) {
    if (typeof req[k] !== "boolean") throw invalidArgument(`create ${req.id}: ${k} must be a boolean`);
  }
}

function validateExec(req: ExecRequest): void {
  if (typeof req !== "object" || req === null) throw invalidArgument("exec: missing request");
  if (!isValidContainerId(req.id)) throw invalidArgument(`exec: invalid container id ${JSON.stringify(req.id)}`);
  if (!Array.isArray(req.args) || req.args.length === 0 || !req.args.every((a) => typeof a === "string" && !a.includes("\0"))) {
    throw invalidArgument(`exec in ${req.id}: args must be a non-empty list of strings without NUL bytes`);
  }
  if (req.env !== undefined && (!Array.isArray(req.env) || !req.env.every((e) => typeof e === "string" && e.includes("=")))) {
    throw invalidArgument(`exec in ${req.id}: env entries must be KEY=VALUE strings`);
  }
  if (req.cwd !== undefined && typeof req.cwd !== "string") throw invalidArgument(`exec in ${req.id}: cwd must be a string`);
  const u = req.user;
  if (u !== undefined) {
    const ids = [u.uid, u.gid, ...(u.additionalGids ?? [])];
    if (!ids.every((n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32)) throw invalidArgument(`exec in ${req.id}: invalid uid/gid`);
  }
  if (!Number.isFinite(req.timeoutMs) || req.timeoutMs < 0) throw invalidArgument(`exec in ${req.id}: invalid timeoutMs`);
  if (!Number.isInteger(req.maxOutputBytes) || req.maxOutputBytes <= 0) throw invalidArgument(`exec in ${req.id}: invalid maxOutputBytes`);
}
