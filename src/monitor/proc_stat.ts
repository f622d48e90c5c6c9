// /proc/<pid>/stat: enough to tell a live process from a zombie, find its parent, and
// tell it from a later process that reused the pid (the start time differs).

import { readFileSync, readdirSync } from "node:fs";

export interface ProcStat {
  /** "R", "S", "Z", ... */
  state: string;
  ppid: number;
  /** Clock ticks after boot (field 22): with the pid, names one process. */
  startTime: string;
}

export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name sits in parentheses and may hold spaces or ')': cut at the last ')'.
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const rest = text.slice(close + 2).split(" ");
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTime = rest[19];
  if (state === undefined || startTime === undefined || !Number.isFinite(ppid)) return undefined;
  return { state, ppid, startTime };
}

/**
 * Whether `pid` is PID 1 of its own PID namespace (the last NSpid of /proc/<pid>/status):
 * when it dies the kernel kills every other process in that namespace.
 */
export function isPidNamespaceInit(pid: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return false;
  }
  const ids = /^NSpid:\s*(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/);
  return ids !== undefined && ids.length > 1 && ids[ids.length - 1] === "1";
}

/** Whether `pid` still names the process that started at `startTime` and has not exited. */
export function isAlive(pid: number, startTime: string | undefined): boolean {
  const st = readProcStat(pid);
  if (st === undefined || st.state === "Z" || st.state === "X") return false;
  return startTime === undefined || st.startTime === startTime;
}

/** This process's children (the kernel lists them per thread). */
export function ownChildren(): number[] {
  const pids = new Set<number>();
  let tasks: string[] = [];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return [];
  }
  for (const tid of tasks) {
    try {
      for (const p of readFileSync(`/proc/self/task/${tid}/children`, "utf8").split(" ")) {
        const n = Number(p);
        if (p !== "" && Number.isInteger(n) && n > 0) pids.add(n);
      }
    } catch {
      // thread ended
    }
  }
  return [...pids];
}
