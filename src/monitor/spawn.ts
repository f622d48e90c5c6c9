// Child processes the monitor starts with Bun.spawn (runc create/start/kill/exec...).
// Bun reaps these itself; the reaper must leave them alone, so every such pid is
// recorded here from fork to exit.

import type { Subprocess } from "bun";
import { deadlineExceeded } from "../errors.ts";

const live = new Set<number>();

/** Whether `pid` is a Bun.spawn child that Bun will reap. */
export function isSpawnedByUs(pid: number): boolean {
  return live.has(pid);
}

type Stdio = "ignore" | "pipe" | number;

export interface SpawnOptions {
  stdin?: Stdio;
  stdout?: Stdio;
  stderr?: Stdio;
  cwd?: string;
  env?: Record<string, string | undefined>;
}

export function spawnTracked(argv: string[], opts: SpawnOptions = {}): Subprocess<"ignore" | "pipe", "pipe", "pipe"> {
  const proc = Bun.spawn(argv, {
    stdio: [opts.stdin ?? "ignore", opts.stdout ?? "pipe", opts.stderr ?? "pipe"],
    cwd: opts.cwd,
    env: opts.env,
  }) as unknown as Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  live.add(proc.pid);
  void proc.exited.finally(() => live.delete(proc.pid));
  return proc;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion, collecting its output; SIGKILL after timeoutMs. */
export async function runCommand(argv: string[], timeoutMs: number, opts: SpawnOptions = {}): Promise<RunResult> {
  const proc = spawnTracked(argv, { stdout: "pipe", stderr: "pipe", ...opts });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const text = (s: unknown): Promise<string> => (s instanceof ReadableStream ? new Response(s).text() : Promise.resolve(""));
    const [stdout, stderr, code] = await Promise.all([text(proc.stdout), text(proc.stderr), proc.exited]);
    if (timedOut) throw deadlineExceeded(`${argv.slice(0, 6).join(" ")} did not finish within ${timeoutMs} ms`);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}
