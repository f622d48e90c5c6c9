// A pod-wide PID namespace needs a process as its PID 1: the crib binary's
// `pause` face. The daemon thread unshares CLONE_NEWPID (which only affects
// children spawned afterwards), spawns it detached, and restores its own
// pid_for_children; the namespace is bind-mounted to <pod>/ns/pid so
// containers join it by path and a reused pid can never be mistaken for it.
import { childEnv } from "../util/child_env.ts";
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errnoCode, internal } from "../errors.ts";
import { MS_BIND, mount } from "../sys/mount.ts";
import { CLONE_NEWPID, setns, unshare } from "../sys/namespace.ts";

/**
 * The argv of this binary's `pause` face, compiled or from source. The pod's
 * namespace dir follows "pause" (pause ignores it): it names the pod, so
 * start-up can find the pause process of a pod a crash left unrecorded.
 */
function pauseCommand(nsDir: string): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return compiled ? [process.execPath, "pause", nsDir] : [process.execPath, Bun.main, "pause", nsDir];
}

export function startPidInfra(nsDir: string): { pid: number; nsPath: string } {
  const original = openSync("/proc/thread-self/ns/pid_for_children", constants.O_RDONLY);
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    unshare(CLONE_NEWPID);
    try {
      proc = Bun.spawn(pauseCommand(nsDir), { detached: true, stdio: ["ignore", "ignore", "ignore"], env: childEnv() });
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

/**
 * SIGKILL the pause process started for the pod namespace dir `nsDir`, found
 * by its argv (see pauseCommand): a crash between starting it and recording
 * the pod leaves it with no record of its pid. Returns how many were killed.
 */
export function killPauseFor(nsDir: string): number {
  let killed = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited while we looked
    }
    const i = argv.indexOf("pause");
    if (i < 1 || argv[i + 1] !== nsDir) continue;
    try {
      process.kill(Number(name), "SIGKILL");
      killed++;
    } catch (e) {
      if (errnoCode(e) !== "ESRCH") throw e;
    }
  }
  return killed;
}
