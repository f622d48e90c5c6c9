// Running one CNI plugin binary: config on stdin, CNI_* in the environment,
// a result or an error on stdout, with a time limit and bounded output.
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { parsePluginError, type CniPluginError } from "./result.ts";

/** Plugins print a small JSON document; more than this is a broken plugin. */
const MAX_OUTPUT = 1024 * 1024;
const STDERR_TAIL = 2000;
/** How long to read on after the plugin exited, for output still in flight. */
const AFTER_EXIT_MS = 2000;

export interface PluginRun { path: string; env: Record<string, string>; stdin: string; timeoutMs: number }

/** Why a plugin run failed; the caller adds which network, plugin and pod. */
export class PluginFailure extends Error {
  override readonly name = "PluginFailure";
  constructor(
    message: string,
    readonly pluginError?: CniPluginError,
    readonly timedOut = false,
  ) {
    super(message);
  }
}

/** The first `dirs` entry holding an executable named `type`. */
export async function findPlugin(type: string, dirs: string[]): Promise<string | undefined> {
  for (const d of dirs) {
    const p = join(d, type);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // not in this dir
    }
  }
  return undefined;
}

/** Run a plugin; resolves to its stdout on exit 0, throws PluginFailure otherwise. */
export async function runPlugin(run: PluginRun): Promise<string> {
  let proc: ReturnType<typeof Bun.spawn<"pipe", "pipe", "pipe">>;
  try {
    proc = Bun.spawn([run.path], { env: run.env, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    throw new PluginFailure(`cannot execute ${run.path}: ${(e as Error).message}`);
  }
  let timedOut = false;
  let tooLong = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, run.timeoutMs);
  const overflow = () => {
    tooLong = true;
    proc.kill("SIGKILL");
  };
  try {
    proc.stdin.write(run.stdin);
    await proc.stdin.end();
  } catch {
    // the plugin exited without reading its config: its exit status says why
  }
  const out = readBounded(proc.stdout, overflow);
  const err = readBounded(proc.stderr, overflow);
  const code = await proc.exited;
  clearTimeout(timer);
  // A child the plugin left behind may hold its stdout open: read on briefly, then give up on it.
  const grace = setTimeout(() => {
    out.cancel();
    err.cancel();
  }, AFTER_EXIT_MS);
  const [stdout, stderr] = await Promise.all([out.text, err.text]);
  clearTimeout(grace);
  if (timedOut) throw new PluginFailure(`did not finish within ${Math.round(run.timeoutMs / 1000)} s and was killed`, undefined, true);
  if (tooLong) throw new PluginFailure(`printed more than ${MAX_OUTPUT} bytes and was killed`);
  if (code === 0) return stdout;
  const pe = parsePluginError(stdout);
  if (pe) throw new PluginFailure("", pe);
  const tail = stderr.trim().slice(-STDERR_TAIL) || stdout.trim().slice(-STDERR_TAIL);
  const how = proc.signalCode ? `was killed by ${proc.signalCode}` : `exited with status ${code}`;
  throw new PluginFailure(`${how}${tail ? `: ${tail}` : " and printed nothing"}`);
}

interface BoundedRead { text: Promise<string>; cancel(): void }

function readBounded(stream: ReadableStream<Uint8Array>, overflow: () => void): BoundedRead {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  const text = (async () => {
    let out = "";
    let size = 0;
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch {
        break; // cancelled
      }
      if (r.done) break;
      size += r.value.length;
      if (size > MAX_OUTPUT) {
        overflow();
        continue; // drain so the process can exit
      }
      out += dec.decode(r.value, { stream: true });
    }
    return out + dec.decode();
  })();
  return { text, cancel: () => void reader.cancel().catch(() => {}) };
}
