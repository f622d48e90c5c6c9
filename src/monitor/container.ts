// One container as the monitor sees it: its stdio FIFOs (or, for a TTY container, the
// pty master runc handed over) and their readers, its CRI log, attached listeners that
// get a copy of the output, its persisted state, and the recording of its init's exit.

import { constants as osConstants } from "node:os";
import { openSync, constants as fsConstants } from "node:fs";
import { errorMessage, failedPrecondition } from "../errors.ts";
import { log, type Logger } from "../log/logger.ts";
import { CLD_EXITED, realtimeNs, setNonblock, type ChildStatus } from "../sys/process.ts";
import { setWindowSize } from "../sys/pty.ts";
import type { StreamName } from "./cri_log.ts";
import { FdWriter } from "./fd_writer.ts";
import { ContainerLog } from "./log_writer.ts";
import { oomCounterFile, oomKilled } from "./oom.ts";
import { closeFd, fifoPaths, makeFifo, openFifoReader, PipeReader, type FifoPaths } from "./pipes.ts";
import type { ContainerState, ContainerStatus, ExitInfo } from "./protocol.ts";
import { writeState, type PersistedContainer } from "./state_store.ts";

/** After the init exits, wait this long for the rest of its output before reporting the exit. */
const DRAIN_MS = 2_000;

const signalNames = new Map<number, string>(Object.entries(osConstants.signals).map(([name, num]) => [num, name]));

export function signalName(sig: number): string {
  return signalNames.get(sig) ?? `SIG${sig}`;
}

/** ExitInfo for a reaped init, as runc reports codes: 128+signal for a signal. */
export function exitFromStatus(s: ChildStatus, oom: boolean, exitedAtNs: bigint): ExitInfo {
  const signaled = s.code !== CLD_EXITED;
  const exitCode = signaled ? 128 + s.status : s.status;
  // Only a failed init is "OOMKilled": an OOM kill of a helper process in a container
  // whose init still succeeded is reported as Completed.
  const reason = oom && exitCode !== 0 ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
  const exit: ExitInfo = { exitCode, exitedAtNs: exitedAtNs.toString(), reason };
  if (signaled) exit.signal = signalName(s.status);
  return exit;
}

/** Someone attached to the container's output (the daemon, for a CRI Attach). */
export interface AttachListener {
  output(stream: StreamName, chunk: Uint8Array): void;
  /** The output ended (the container exited); no more calls follow. */
  end(): void;
}

/** EOT: what a terminal in canonical mode reads as end of input. */
const EOT = Uint8Array.of(4);

export type Watch =
  /** The init is our child: waitid gives its exact exit status. */
  | "child"
  /** The init outlived a previous monitor and is no longer our child: polled in /proc. */
  | "adopted"
  /** No init to watch (exited, or not created yet). */
  | "none";

export class Container {
  readonly paths: FifoPaths;
  readonly log: Logger;
  watch: Watch = "none";
  /** The exit as clients see it: set once the output is drained (the persisted one is set at reap time). */
  private visibleExit: ExitInfo | undefined;
  private logFile: ContainerLog | undefined;
  private readers: PipeReader[] = [];
  private readFds: Partial<Record<StreamName, number>> = {};
  private stdinWriteFd = -1;
  private stdinWriter: FdWriter | undefined;
  private readonly attaches = new Set<AttachListener>();
  private readonly endedStreams = new Set<StreamName>();
  private outputEnded = false;
  private exitRecorded = false;
  private oomFile: string | undefined;
  deleted = false;

  constructor(
    readonly dir: string,
    public st: PersistedContainer,
    private readonly onExitVisible: (c: Container, exit: ExitInfo) => void,
  ) {
    this.paths = fifoPaths(dir);
    this.log = log.with({ component: "monitor", container: st.id });
    if (st.exit !== undefined) {
      this.visibleExit = st.exit;
      this.exitRecorded = true;
    }
  }

  get id(): string {
    return this.st.id;
  }

  status(): ContainerStatus {
    if (this.visibleExit !== undefined) return "exited";
    if (this.st.startedAtNs !== undefined) return "running";
    if (this.st.pid > 0) return "created";
    return "unknown";
  }

  view(): ContainerState {
    const s: ContainerState = { id: this.st.id, status: this.status(), pid: this.st.pid, createdAtNs: this.st.createdAtNs };
    if (this.st.startedAtNs !== undefined) s.startedAtNs = this.st.startedAtNs;
    if (this.visibleExit !== undefined) s.exit = this.visibleExit;
    return s;
  }

  get hasExited(): boolean {
    return this.exitRecorded;
  }

  persist(): void {
    if (this.deleted) return;
    try {
      writeState(this.dir, this.st);
    } catch (err) {
      this.log.error("cannot save container state", { dir: this.dir, err: errorMessage(err) });
    }
  }

  /** Open the log file (an error names the path). No log path: no file, output is only drained. */
  openLog(): void {
    if (this.st.logPath === "") return;
    this.logFile = new ContainerLog(this.st.id, this.st.logPath);
  }

  /** Reopen the log file; a container without a log path has nothing to reopen (as containerd). */
  reopenLog(): void {
    if (this.logFile === undefined) this.openLog();
    else this.logFile.reopen();
  }

  /** Make the FIFOs (stdin only when asked; none for a TTY container, whose stdio is its terminal). */
  makeFifos(): void {
    if (this.st.tty) return;
    makeFifo(this.paths.stdout);
    makeFifo(this.paths.stderr);
    if (this.st.stdin) makeFifo(this.paths.stdin);
  }

  /** A TTY container's pty master (from runc's console socket): read as its stdout, written as its stdin. */
  setTerminal(master: number): void {
    setNonblock(master, true);
    this.readFds.stdout = master;
  }

  private get streams(): StreamName[] {
    return this.st.tty ? ["stdout"] : ["stdout", "stderr"];
  }

  /**
   * Start reading stdout and stderr: from inherited fds (a re-exec'd monitor) or by
   * opening the FIFOs by path. Data written while no monitor read sits in the pipe.
   */
  attachOutput(inherited: Partial<Record<StreamName, number>> = {}): void {
    for (const stream of this.streams) {
      if (this.readers.some((r) => r.stream === stream)) continue;
      let fd = this.readFds[stream] ?? inherited[stream];
      if (fd === undefined && this.st.tty) {
        // The master lived only in the monitor that died: the terminal is gone.
        if (this.st.exit === undefined) this.log.warn("the terminal of this TTY container was lost with the previous monitor; its output is no longer recorded");
        continue;
      }
      if (fd === undefined) {
        try {
          fd = openFifoReader(this.paths[stream]);
        } catch (err) {
          this.log.warn("cannot open the output FIFO", { stream, err: errorMessage(err) });
          continue;
        }
      }
      this.readFds[stream] = fd;
      const reader = new PipeReader(fd, stream, (s, chunk) => this.output(s, chunk), this.st.id);
      void reader.done.then((how) => {
        if (how !== "eof") return;
        this.logFile?.flush(stream);
        this.endedStreams.add(stream);
        if (this.streams.every((st) => this.endedStreams.has(st))) this.endOutput();
      });
      this.readers.push(reader);
    }
  }

  /** Output goes to the log first, then a copy to every attached listener. */
  private output(stream: StreamName, chunk: Uint8Array): void {
    this.logFile?.write(stream, chunk);
    for (const l of this.attaches) {
      try {
        l.output(stream, chunk);
      } catch (err) {
        this.log.warn("an attached listener failed; detaching it", { err: errorMessage(err) });
        this.attaches.delete(l);
      }
    }
  }

  /** Get a copy of the output from now on; returns the detach function. */
  attach(l: AttachListener): () => void {
    if (this.outputEnded || this.visibleExit !== undefined) {
      queueMicrotask(() => l.end());
      return () => undefined;
    }
    this.attaches.add(l);
    return () => this.attaches.delete(l);
  }

  /** Whether the output is over (nothing more will be attached to). */
  get ended(): boolean {
    return this.outputEnded || this.visibleExit !== undefined;
  }

  private endOutput(): void {
    if (this.outputEnded) return;
    this.outputEnded = true;
    for (const l of [...this.attaches]) l.end();
    this.attaches.clear();
  }

  /** Write to the container's stdin (its FIFO, or its terminal). */
  async writeStdin(chunk: Uint8Array): Promise<void> {
    if (!this.st.stdin) throw failedPrecondition(`container ${this.id} was not created with stdin`);
    if (this.st.stdinClosed === true) throw failedPrecondition(`the stdin of container ${this.id} is closed (stdinOnce)`);
    const fd = this.st.tty ? (this.readFds.stdout ?? -1) : this.stdinWriteFd;
    if (fd < 0) throw failedPrecondition(`the stdin of container ${this.id} is not open (nothing reads it any more)`);
    this.stdinWriter ??= new FdWriter(fd, `the stdin of container ${this.id}`);
    await this.stdinWriter.write(chunk);
  }

  /** Resize a TTY container's terminal (no-op for others). */
  resize(cols: number, rows: number): void {
    const master = this.readFds.stdout;
    if (!this.st.tty || master === undefined) return;
    setWindowSize(master, { cols, rows });
  }

  /**
   * Hold a write end of stdin so the container sees no EOF until closeStdin()
   * (stdinOnce: after the first attach). Non-blocking: ENXIO when no reader is left.
   */
  holdStdin(): void {
    if (!this.st.stdin || this.st.tty || this.st.stdinClosed === true || this.stdinWriteFd >= 0) return;
    try {
      this.stdinWriteFd = openSync(this.paths.stdin, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      this.log.debug("stdin FIFO has no reader", { err: errorMessage(err) });
    }
  }

  closeStdin(): void {
    if (this.st.tty) {
      // A terminal cannot be half-closed: end the input line discipline's way (EOT).
      if (this.st.stdin && this.readFds.stdout !== undefined) void this.writeStdin(EOT).catch(() => undefined);
      return;
    }
    if (this.st.stdin && this.st.stdinClosed !== true) {
      this.st.stdinClosed = true;
      this.persist();
    }
    this.releaseStdin();
  }

  private releaseStdin(): void {
    this.stdinWriter?.close();
    this.stdinWriter = undefined;
    if (this.st.tty) return; // the master is closed with the read fds
    closeFd(this.stdinWriteFd);
    this.stdinWriteFd = -1;
  }

  /** The read fds, for handing to a re-exec'd monitor. */
  outputFds(): Partial<Record<StreamName, number>> {
    return { ...this.readFds };
  }

  /** Stop the readers; the unfinished line of each stream goes out as P (the reader joins it with what follows). */
  async stopReaders(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.stop()));
    this.logFile?.flush("stdout");
    this.logFile?.flush("stderr");
    this.readers = [];
  }

  /** Close everything this container holds. */
  async release(): Promise<void> {
    await this.stopReaders();
    for (const fd of Object.values(this.readFds)) closeFd(fd);
    this.readFds = {};
    this.releaseStdin();
    this.logFile?.close();
    this.logFile = undefined;
  }

  /** Remember where the OOM counter lives (read at exit; the cgroup exists from create on). */
  locateOomCounter(): void {
    this.oomFile = oomCounterFile(this.st.bundle, this.st.id, this.st.runtime.systemdCgroup === true);
  }

  /** The init was reaped: record the exit now, report it once the output is drained. */
  recordChildExit(status: ChildStatus): void {
    this.recordExit(exitFromStatus(status, oomKilled(this.oomFile), realtimeNs()));
  }

  /** The init is gone but not ours to wait for: its status is unknown. */
  recordUnknownExit(message: string): void {
    this.recordExit({ exitCode: 255, exitedAtNs: realtimeNs().toString(), reason: "Unknown", message });
  }

  private recordExit(exit: ExitInfo): void {
    if (this.exitRecorded) return;
    this.exitRecorded = true;
    this.watch = "none";
    this.st.exit = exit;
    this.persist();
    this.log.info("container exited", { pid: this.st.pid, exitCode: exit.exitCode, reason: exit.reason, signal: exit.signal });
    const drained = Promise.all(this.readers.map((r) => r.done));
    void Promise.race([drained, Bun.sleep(DRAIN_MS)]).then(() => {
      this.visibleExit = exit;
      this.endOutput();
      if (!this.deleted) this.onExitVisible(this, exit);
    });
  }
}
