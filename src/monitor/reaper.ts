// Reaping as a child subreaper. Container inits become our children when `runc create`
// exits; we wait for each by pid (never P_ALL: Bun reaps its own Bun.spawn children).
// Other orphans that land on us (processes of host-PID containers) are reaped too, but
// only when /proc shows them as zombies and they are neither Bun's nor an init.

import { errnoCode, errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import { waitPid } from "../sys/process.ts";
import type { Container } from "./container.ts";
import { isAlive, ownChildren, readProcStat } from "./proc_stat.ts";
import { isSpawnedByUs } from "./spawn.ts";

const SWEEP_INTERVAL_MS = 1_000;

export interface ReaperHost {
  /** Containers whose init has not exited. */
  watched(): Iterable<Container>;
  /** While a `runc create` runs, an unknown child may be an init whose pid we do not know yet. */
  createsInFlight(): number;
}

export class Reaper {
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly log = log.with({ component: "monitor" });
  private readonly onSignal = () => this.sweep();

  constructor(private readonly host: ReaperHost) {}

  start(): void {
    process.on("SIGCHLD", this.onSignal);
    // SIGCHLD covers our children; the timer covers adopted inits (no signal for
    // those) and anything a coalesced signal hid.
    this.timer = setInterval(this.onSignal, SWEEP_INTERVAL_MS);
  }

  stop(): void {
    process.off("SIGCHLD", this.onSignal);
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  sweep(): void {
    const inits = new Set<number>();
    for (const c of this.host.watched()) {
      inits.add(c.st.pid);
      try {
        this.check(c);
      } catch (err) {
        this.log.error("checking a container's init failed", { container: c.id, err: errorMessage(err) });
      }
    }
    if (this.host.createsInFlight() === 0) this.reapStrays(inits);
  }

  /** Decide how to watch an init we did not start in this process (restart, re-exec). */
  classify(c: Container): void {
    const st = readProcStat(c.st.pid);
    const ours = st !== undefined && st.ppid === process.pid;
    const gone = st === undefined || st.startTime !== (c.st.pidStartTime ?? st.startTime) || (!ours && (st.state === "Z" || st.state === "X"));
    // A zombie child of ours (it died across our re-exec) is still waitable: exact status.
    c.watch = gone ? "none" : ours ? "child" : "adopted";
  }

  private check(c: Container): void {
    if (c.hasExited || c.st.pid <= 0) return;
    if (c.watch === "child") {
      let status;
      try {
        status = waitPid(c.st.pid);
      } catch (err) {
        if (errnoCode(err) !== "ECHILD") throw err;
        // Not our child after all (should not happen): fall back to polling.
        this.log.warn("container init is not our child; watching it through /proc", { container: c.id, pid: c.st.pid });
        c.watch = "adopted";
        return;
      }
      if (status !== null) c.recordChildExit(status);
    } else if (c.watch === "adopted") {
      if (!isAlive(c.st.pid, c.st.pidStartTime)) {
        c.recordUnknownExit("the container's init exited while watched from outside its process tree (after a monitor restart); its exit status is unknown");
      }
    }
  }

  private reapStrays(inits: Set<number>): void {
    for (const pid of ownChildren()) {
      if (inits.has(pid) || isSpawnedByUs(pid)) continue;
      const st = readProcStat(pid);
      if (st?.state !== "Z") continue;
      try {
        const status = waitPid(pid);
        if (status !== null) this.log.debug("reaped an orphaned process", { pid, code: status.code, status: status.status });
      } catch {
        // someone else reaped it
      }
    }
  }
}
