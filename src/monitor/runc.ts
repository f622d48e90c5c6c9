// Invoking the OCI runtime (runc or a runc-compatible binary) for one container.

import { readFileSync } from "node:fs";
import { CribError, failedPrecondition, internal, notFound } from "../errors.ts";
import type { RuntimeRef } from "./protocol.ts";
import { Limiter } from "../util/limiter.ts";
import { runCommand, spawnTracked } from "./spawn.ts";

/** runc create/start/kill/delete each get this long before we SIGKILL runc. */
const RUNC_TIMEOUT_MS = 120_000;

/**
 * `runc create`s running at once. A burst (a node starting 100 pods) would otherwise
 * run them all together on a few cores, each slowed by all the others, so that every
 * one finished near the end; in turn, the first ones finish early and their pods get
 * going while the rest wait.
 */
const createSlots = new Limiter(Math.max(2, 2 * navigator.hardwareConcurrency));

/** What errors call the OCI runtime: its program's name ("runc", "crun"). */
export function runtimeName(rt: { path: string }): string {
  return rt.path.slice(rt.path.lastIndexOf("/") + 1) || rt.path;
}

export function runcBase(rt: RuntimeRef, logFile?: string): string[] {
  const argv = [rt.path, "--root", rt.root];
  if (rt.systemdCgroup) argv.push("--systemd-cgroup");
  if (logFile !== undefined) argv.push("--log", logFile, "--log-format", "json");
  return argv;
}

/** The last error runc wrote to its JSON log (or the raw tail if it is not JSON). */
export function lastRuncError(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return undefined;
  }
  const lines = text.trim().split("\n").filter((l) => l.length > 0);
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const rec = JSON.parse(lines[i]!) as { level?: unknown; msg?: unknown };
      if ((rec.level === "error" || rec.level === "fatal") && typeof rec.msg === "string") return rec.msg;
    } catch {
      return lines[i];
    }
  }
  return undefined;
}

function runcError(what: string, id: string, message: string): CribError {
  const msg = `${what} of container ${id} failed: ${message.trim() || "no error message from the runtime"}`;
  if (/does not exist|not exist/.test(message)) return notFound(msg);
  if (/not running|is stopped|already/.test(message)) return failedPrecondition(msg);
  return internal(msg);
}

async function runRunc(rt: RuntimeRef, args: string[], id: string): Promise<string> {
  const res = await runCommand([...runcBase(rt), ...args], RUNC_TIMEOUT_MS);
  if (res.code !== 0) throw runcError(`${runtimeName(rt)} ${args[0] ?? ""}`, id, res.stderr || res.stdout);
  return res.stdout;
}

/**
 * `runc create`: the container's stdio are the given fds (runc passes non-TTY stdio
 * through to the container process). For a TTY container (process.terminal in the
 * spec) runc sends the pty master to `consoleSocket` instead. runc's own errors go
 * to `logFile`.
 */
export async function runcCreate(
  rt: RuntimeRef,
  id: string,
  bundle: string,
  pidFile: string,
  logFile: string,
  stdio: { stdin: number | "ignore"; stdout: number | "ignore"; stderr: number | "ignore" },
  consoleSocket?: string,
): Promise<void> {
  const argv = [...runcBase(rt, logFile), "create", "--bundle", bundle, "--pid-file", pidFile];
  if (consoleSocket !== undefined) argv.push("--console-socket", consoleSocket);
  argv.push(id);
  const code = await createSlots.run(async () => {
    const proc = spawnTracked(argv, { stdin: stdio.stdin, stdout: stdio.stdout, stderr: stdio.stderr, cwd: bundle });
    const timer = setTimeout(() => proc.kill("SIGKILL"), RUNC_TIMEOUT_MS);
    const exited = await proc.exited;
    clearTimeout(timer);
    return exited;
  });
  if (code !== 0) {
    const msg = lastRuncError(logFile) ?? `exit code ${code}`;
    const what = `${runtimeName(rt)} create`;
    throw /exists/.test(msg) ? new CribError("already_exists", `${what} of container ${id} failed: ${msg}`) : runcError(what, id, msg);
  }
}

export async function runcStart(rt: RuntimeRef, id: string): Promise<void> {
  await runRunc(rt, ["start", id], id);
}

export async function runcKill(rt: RuntimeRef, id: string, signal: string, all: boolean): Promise<void> {
  await runRunc(rt, ["kill", ...(all ? ["--all"] : []), id, signal], id);
}

/** `runc delete --force`; an unknown container is fine (delete is idempotent). */
export async function runcDelete(rt: RuntimeRef, id: string): Promise<void> {
  try {
    await runRunc(rt, ["delete", "--force", id], id);
  } catch (err) {
    if (err instanceof CribError && err.kind === "not_found") return;
    throw err;
  }
}

export interface RuncState {
  status: string;
  pid: number;
}

/** `runc state`, or null when runc does not know the container. */
export async function runcState(rt: RuntimeRef, id: string): Promise<RuncState | null> {
  try {
    const out = await runRunc(rt, ["state", id], id);
    const st = JSON.parse(out) as { status?: unknown; pid?: unknown };
    return { status: typeof st.status === "string" ? st.status : "unknown", pid: typeof st.pid === "number" ? st.pid : 0 };
  } catch (err) {
    if (err instanceof CribError && err.kind === "not_found") return null;
    throw err;
  }
}
