// A streaming exec: `runc exec` started by the daemon, its stdio wired to the client's
// channel. Without a TTY the process gets pipes; with one, runc creates the exec's
// terminal and relays it to a pty of ours, which we read as the one output stream,
// write stdin into, and resize.
//
// The exec'd process belongs to this connection: when the client goes away first it
// is killed (by the pid runc wrote). A daemon restart also ends interactive execs
// (their pipes or terminal die with it); the container itself is not touched.

import { childEnv } from "../util/child_env.ts";
import { closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import { FdWriter } from "../monitor/fd_writer.ts";
import type { RuntimeRef } from "../monitor/protocol.ts";
import { runcBase } from "../monitor/runc.ts";
import { setNonblock } from "../sys/process.ts";
import { makeRaw, openPty, setWindowSize } from "../sys/pty.ts";
import type { CommandChannel } from "./command_channel.ts";
import type { TerminalSize } from "./status.ts";
import { randomHex } from "../util/random_hex.ts";

const logger = log.with({ component: "stream" });

/** After the process exits, output still held open (by a background child) is read this much longer. */
const DRAIN_AFTER_EXIT_MS = 1_000;
/** How long a TTY exec waits for the client's first terminal size before it starts anyway. */
const FIRST_SIZE_WAIT_MS = 250;
/** Pause the client while this much stdin waits for the process to read it. */
const STDIN_BACKLOG_BYTES = 1024 * 1024;
const EOT = Uint8Array.of(4);

export interface ExecTarget {
  runtime: RuntimeRef;
  containerId: string;
  cmd: string[];
  /** The container's OCI bundle: its config.json holds the process an exec starts from. */
  bundle: string;
  /** A private dir for the pid and process files of running execs. */
  workDir: string;
}

interface ChunkReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(): Promise<void>;
}

/** Reads a stream to its end, handing each chunk to `write` (which may apply back-pressure). */
class Pump {
  private readonly reader: ChunkReader;
  readonly done: Promise<void>;
  constructor(stream: ReadableStream<Uint8Array>, write: (c: Uint8Array) => Promise<void>) {
    const reader = stream.getReader() as unknown as ChunkReader;
    this.reader = reader;
    this.done = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || value === undefined) return;
          await write(value);
        }
      } catch {
        // EIO (a terminal with no process left) or a cancel: the end
      }
    })();
  }
  stop(): void {
    this.reader.cancel().catch(() => undefined);
  }
}

/** Wait for the pumps, but not longer than DRAIN_AFTER_EXIT_MS after the exit. */
async function drain(pumps: Pump[]): Promise<void> {
  const all = Promise.all(pumps.map((p) => p.done));
  const finished = await Promise.race([all.then(() => true), Bun.sleep(DRAIN_AFTER_EXIT_MS).then(() => false)]);
  if (!finished) for (const p of pumps) p.stop();
  await all;
}

function killByPidFile(pidFile: string, proc: Subprocess): void {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    // runc exec waits for the process, so the pid cannot have been reused while runc lives.
    if (Number.isInteger(pid) && pid > 0 && proc.exitCode === null) {
      process.kill(pid, "SIGKILL");
      return;
    }
  } catch {
    // no pid yet
  }
  if (proc.exitCode === null) proc.kill("SIGKILL");
}

/** Run the exec to its end and report its exit code (or why it could not run) on the channel. */
export async function runExec(target: ExecTarget, ch: CommandChannel): Promise<void> {
  const id = randomHex(8);
  const pidFile = join(target.workDir, `exec-${id}.pid`);
  const processFile = join(target.workDir, `exec-${id}.json`);
  try {
    if (ch.options.tty) await execTty(target, ch, pidFile, processFile);
    else await execPipes(target, ch, pidFile);
  } catch (err) {
    logger.warn("exec failed", { container: target.containerId, err: errorMessage(err) });
    ch.finish({ error: `exec in container ${target.containerId} failed: ${errorMessage(err)}` });
  } finally {
    rmSync(pidFile, { force: true });
    rmSync(processFile, { force: true });
  }
}

async function execPipes(target: ExecTarget, ch: CommandChannel, pidFile: string): Promise<void> {
  const o = ch.options;
  const argv = [...runcBase(target.runtime), "exec", "--pid-file", pidFile, target.containerId, ...target.cmd];
  const proc = Bun.spawn(argv, {
    env: childEnv(),
    stdin: o.stdin ? "pipe" : "ignore",
    stdout: o.stdout ? "pipe" : "ignore",
    // runc's own errors ("executable file not found") reach the client here.
    stderr: o.stderr ? "pipe" : "ignore",
  });
  const pumps: Pump[] = [];
  if (o.stdout) pumps.push(new Pump(proc.stdout as ReadableStream<Uint8Array>, (c) => ch.writeStdout(c)));
  if (o.stderr) pumps.push(new Pump(proc.stderr as ReadableStream<Uint8Array>, (c) => ch.writeStderr(c)));
  const sink = o.stdin ? (proc.stdin as import("bun").FileSink) : undefined;
  let stdinOpen = sink !== undefined;
  const closeStdin = () => {
    if (!stdinOpen) return;
    stdinOpen = false;
    try {
      void Promise.resolve(sink!.end()).catch(() => undefined);
    } catch {
      // the process is gone
    }
  };
  let clientGone = false;
  ch.receive({
    stdin: (chunk) => {
      if (!stdinOpen) return;
      try {
        sink!.write(chunk);
        const flushed = sink!.flush();
        if (flushed instanceof Promise) {
          ch.pauseInput();
          flushed.then(() => ch.resumeInput(), () => ch.resumeInput());
        }
      } catch {
        stdinOpen = false; // the process closed its stdin
      }
    },
    stdinEnd: closeStdin,
    resize: () => undefined,
    closed: () => {
      clientGone = true;
      closeStdin();
      for (const p of pumps) p.stop();
      killByPidFile(pidFile, proc);
    },
  });
  const exitCode = await proc.exited;
  closeStdin();
  await drain(pumps);
  if (!clientGone) ch.finish({ exitCode });
}

/**
 * The process spec of a TTY exec: the container's own (user, capabilities, env, cwd,
 * as `runc exec` would derive them) with the command, a terminal, TERM, and the
 * client's terminal size, which runc gives the terminal before the command starts.
 */
function writeTtyProcess(target: ExecTarget, size: TerminalSize | undefined, file: string): void {
  const spec = JSON.parse(readFileSync(join(target.bundle, "config.json"), "utf8")) as { process?: Record<string, unknown> };
  if (spec.process === undefined) throw new Error(`${target.bundle}/config.json has no process`);
  const env = (Array.isArray(spec.process.env) ? (spec.process.env as string[]) : []).filter((e) => !e.startsWith("TERM="));
  const proc: Record<string, unknown> = { ...spec.process, args: target.cmd, terminal: true, env: [...env, "TERM=xterm"] };
  if (size !== undefined && size.width > 0 && size.height > 0) proc.consoleSize = { height: size.height, width: size.width };
  else delete proc.consoleSize;
  writeFileSync(file, JSON.stringify(proc), { mode: 0o600 });
}

async function execTty(target: ExecTarget, ch: CommandChannel, pidFile: string, processFile: string): Promise<void> {
  const o = ch.options;
  // runc allocates the exec's terminal itself and relays it to its own stdio, which
  // must be a terminal too: ours, in raw mode so it passes bytes through untouched.
  // (runc refuses --console-socket unless it detaches, and a detached exec's exit
  // status would only reach a subreaper.) Resizes: our pty's size, then SIGWINCH
  // makes runc copy it to the exec's terminal.
  const pty = openPty();
  let master = pty.master;
  let size: TerminalSize | undefined;
  let proc: Subprocess | undefined;
  let clientGone = false;
  let stdinEnded = false;
  const pendingStdin: Uint8Array[] = [];
  const writer = new FdWriter(master, `the terminal of an exec in container ${target.containerId}`);
  const resize = (s: TerminalSize) => {
    size = s;
    try {
      setWindowSize(master, { cols: s.width, rows: s.height });
      proc?.kill("SIGWINCH");
    } catch (err) {
      logger.debug("terminal resize failed", { err: errorMessage(err) });
    }
  };
  const writeStdin = (chunk: Uint8Array) => {
    if (proc === undefined) {
      pendingStdin.push(chunk);
      return;
    }
    const paused = writer.pending > STDIN_BACKLOG_BYTES;
    if (paused) ch.pauseInput();
    writer.write(chunk).then(
      () => paused && ch.resumeInput(),
      () => paused && ch.resumeInput(),
    );
  };
  let firstSize: () => void = () => undefined;
  const gotFirstSize = new Promise<void>((resolve) => (firstSize = resolve));
  ch.receive({
    stdin: (chunk) => {
      if (o.stdin) writeStdin(chunk);
    },
    // A terminal cannot be half-closed; EOT is end-of-input to a reader in canonical mode.
    stdinEnd: () => {
      if (!o.stdin || stdinEnded) return;
      stdinEnded = true;
      writeStdin(EOT);
    },
    resize: (s) => {
      resize(s);
      firstSize();
    },
    closed: () => {
      clientGone = true;
      firstSize();
      if (proc) killByPidFile(pidFile, proc);
    },
  });
  try {
    makeRaw(pty.slave);
    // kubectl and crictl send the terminal's size right after opening their streams:
    // start with it, so the first thing the command sees is the right size.
    if (ch.hasResize) await Promise.race([gotFirstSize, Bun.sleep(FIRST_SIZE_WAIT_MS)]);
    if (clientGone) return;
    writeTtyProcess(target, size, processFile);
    const argv = [...runcBase(target.runtime), "exec", "--tty", "--pid-file", pidFile, "--process", processFile, target.containerId];
    proc = Bun.spawn(argv, { stdin: pty.slave, stdout: pty.slave, stderr: pty.slave, env: childEnv() });
  } finally {
    closeSync(pty.slave);
  }
  setNonblock(master, true);
  if (size) resize(size);
  for (const c of pendingStdin.splice(0)) writeStdin(c);
  // runc's own complaints (the command does not exist) come through the terminal too.
  const out = new Pump(Bun.file(master).stream() as ReadableStream<Uint8Array>, (c) => ch.writeStdout(c));
  const exitCode = await proc.exited;
  await drain([out]);
  writer.close();
  try {
    closeSync(master);
  } catch {
    // closed
  }
  master = -1;
  if (!clientGone) ch.finish({ exitCode });
}
