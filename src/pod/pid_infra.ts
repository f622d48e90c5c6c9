// A pod-wide PID namespace needs a process as its PID 1: the crib binary's
// `pause` face. The daemon thread unshares CLONE_NEWPID (which only affects
// children spawned afterwards), spawns it detached, and restores its own
// pid_for_children; the namespace is bind-mounted to <pod>/ns/pid so
// containers join it by path and a reused pid can never be mistaken for it.
import { closeSync, constants, openSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errnoCode, internal } from "../errors.ts";
import { MS_BIND, mount } from "../sys/mount.ts";
import { CLONE_NEWPID, setns, unshare } from "../sys/namespace.ts";

/** The argv of this binary's `pause` face, compiled or from source. */
function pauseCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return compiled ? [process.execPath, "pause"] : [process.execPath, Bun.main, "pause"];
}

export function startPidInfra(nsDir: string): { pid: number; nsPath: string } {
  const original = openSync("/proc/thread-self/ns/pid_for_children", constants.O_RDONLY);
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    unshare(CLONE_NEWPID);
    try {
      proc = Bun.spawn(pauseCommand(), { detached: true, stdio: ["ignore", "ignore", "ignore"] });
    } finally {
      setns(original, CLONE_NEWPID);
    }
  } finally {
    closeSync(original);
  }
  proc.unref();
  const nsPath = join(nsDir, "pid");
  writeFileSync(nsPath, "", { mode: 0o444 });
  try {
    mount(`/proc/${proc.pid}/ns/pid`, nsPath, null, MS_BIND);
  } catch (e) {
    proc.kill("SIGKILL");
    throw internal(`could not pin the pod's PID namespace: ${(e as Error).message}`, e);
  }
  return { pid: proc.pid, nsPath };
}

/** Stop the infra process if `pid` still is the one holding `nsPath`. */
export function stopPidInfra(pid: number, nsPath: string): void {
  try {
    const link = readlinkSync(`/proc/${pid}/ns/pid`); // "pid:[inode]"
    if (link !== `pid:[${statSync(nsPath).ino}]`) return; // the pid was reused: not ours
    process.kill(pid, "SIGKILL");
  } catch (e) {
    if (errnoCode(e) !== "ENOENT" && errnoCode(e) !== "ESRCH") throw e;
  }
}
