// Per-container monitor state on disk: DIR/monitor/<id>/state.json, written atomically
// (tmp + fsync + rename) so a crash leaves the old or the new version, never half.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import type { CreateRequest, ExitInfo } from "./protocol.ts";

/** What the monitor keeps of a container: its create request, plus what happened since. */
export interface PersistedContainer extends CreateRequest {
  version: 1;
  /** closeStdin() was called: no write end is held any more (the container saw EOF). */
  stdinClosed?: boolean;
  /** The init's host pid (0 until runc create reported it). */
  pid: number;
  /** /proc/<pid>/stat start time, to tell the init from a process that reused its pid. */
  pidStartTime?: string;
  createdAtNs: string;
  startedAtNs?: string;
  exit?: ExitInfo;
}

export function stateFile(dir: string): string {
  return `${dir}/state.json`;
}

export function writeState(dir: string, st: PersistedContainer): void {
  const tmp = `${dir}/state.json.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, JSON.stringify(st));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, stateFile(dir));
}

/** The saved state, or undefined when the file is missing or not ours. */
export function readState(dir: string): PersistedContainer | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(stateFile(dir), "utf8"));
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const st = raw as Partial<PersistedContainer>;
  if (st.version !== 1 || typeof st.id !== "string" || typeof st.bundle !== "string" || typeof st.logPath !== "string") return undefined;
  if (typeof st.pid !== "number" || typeof st.createdAtNs !== "string" || typeof st.runtime !== "object" || st.runtime === null) return undefined;
  return st as PersistedContainer;
}
