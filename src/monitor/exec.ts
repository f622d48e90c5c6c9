// ExecSync: `runc exec` a command in a running container and collect its output, each
// stream capped (CVE-2022-31030 and CVE-2022-1708 were unbounded exec output), with a
// timeout that kills the exec'd process (not just runc).

import { readFileSync, rmSync } from "node:fs";
import type { ExecRequest, ExecResult, RuntimeRef } from "./protocol.ts";
import { runcBase } from "./runc.ts";
import { spawnTracked } from "./spawn.ts";

const encoder = new TextEncoder();

/** Appended to a stream cut at the cap, so a reader sees the output is incomplete. */
export function truncationMark(cap: number): Uint8Array {
  return encoder.encode(`\n[crib: output truncated: more than ${cap} bytes]\n`);
}

interface Collected {
  bytes: Uint8Array;
  truncated: boolean;
}

/** After runc exec exits, output still open (a background process holds it) is read this much longer. */
const DRAIN_AFTER_EXIT_MS = 1_000;

/** Reads a stream to its end (or until stopped), keeping at most `cap` bytes (the mark included). */
/** The part of a stream reader we use (Bun's and the DOM's reader types differ). */
interface ChunkReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(): Promise<void>;
}

class Collector {
  private readonly reader: ChunkReader;
  readonly done: Promise<Collected>;
  constructor(stream: ReadableStream<Uint8Array>, cap: number) {
    this.reader = stream.getReader();
    this.done = collect(this.reader, cap);
  }
  stop(): void {
    this.reader.cancel().catch(() => undefined);
  }
}

async function collect(reader: ChunkReader, cap: number): Promise<Collected> {
  const chunks: Uint8Array[] = [];
  let kept = 0;
  let truncated = false;
  for (;;) {
    let res: { done: boolean; value?: Uint8Array };
    try {
      res = await reader.read();
    } catch {
      break;
    }
    const chunk = res.value;
    if (res.done || chunk === undefined) break;
    await new Promise<void>((resolve) => setImmediate(resolve)); // one chunk per turn (see PipeReader)
    if (truncated) continue; // drain, so the process is not blocked on a full pipe
    if (kept + chunk.length <= cap) {
      chunks.push(chunk);
      kept += chunk.length;
    } else {
      chunks.push(chunk.subarray(0, cap - kept));
      kept = cap;
      truncated = true;
    }
  }
  let bytes = Buffer.concat(chunks, kept) as Uint8Array;
  if (truncated) {
    const mark = truncationMark(cap);
    if (mark.length <= cap) {
      const out = new Uint8Array(cap);
      out.set(bytes.subarray(0, cap - mark.length));
      out.set(mark, cap - mark.length);
      bytes = out;
    }
  }
  return { bytes, truncated };
}

export function execArgv(rt: RuntimeRef, req: ExecRequest, pidFile: string): string[] {
  const argv = [...runcBase(rt), "exec", "--pid-file", pidFile];
  if (req.cwd !== undefined && req.cwd !== "") argv.push("--cwd", req.cwd);
  for (const e of req.env ?? []) argv.push("--env", e);
  if (req.user !== undefined) {
    argv.push("--user", `${req.user.uid}:${req.user.gid}`);
    for (const g of req.user.additionalGids ?? []) argv.push("--additional-gids", String(g));
  }
  argv.push(req.id, ...req.args);
  return argv;
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function execSync(rt: RuntimeRef, req: ExecRequest, pidFile: string): Promise<ExecResult> {
  const proc = spawnTracked(execArgv(rt, req, pidFile), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // setTimeout fires at once for delays past 2^31-1 ms: treat those as no limit.
  if (req.timeoutMs > 0 && req.timeoutMs <= 2 ** 31 - 1) {
    timer = setTimeout(() => {
      timedOut = true;
      void killExec(proc, pidFile);
    }, req.timeoutMs);
  }
  try {
    const outC = new Collector(proc.stdout as ReadableStream<Uint8Array>, req.maxOutputBytes);
    const errC = new Collector(proc.stderr as ReadableStream<Uint8Array>, req.maxOutputBytes);
    const exitCode = await proc.exited;
    const both = Promise.all([outC.done, errC.done]);
    const drained = await Promise.race([both.then(() => true), Bun.sleep(DRAIN_AFTER_EXIT_MS).then(() => false)]);
    if (!drained) {
      outC.stop();
      errC.stop();
    }
    const [out, err] = await both;
    return { exitCode, stdout: out.bytes, stderr: err.bytes, timedOut, truncated: out.truncated || err.truncated };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    rmSync(pidFile, { force: true });
  }
}

/**
 * SIGKILL the exec'd process (runc exec waits for it and then exits). While runc lives
 * the pid cannot have been reused: runc has not reaped it yet. If runc has not written
 * the pid file after a few seconds, kill runc itself.
 */
async function killExec(proc: { pid: number; exitCode: number | null; kill(sig?: number | NodeJS.Signals): void }, pidFile: string): Promise<void> {
  const giveUp = performance.now() + 5_000; // monotonic: the wall clock may jump
  while (proc.exitCode === null && performance.now() < giveUp) {
    const pid = readPid(pidFile);
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited already
      }
      return;
    }
    await Bun.sleep(50);
  }
  if (proc.exitCode === null) proc.kill("SIGKILL");
}
