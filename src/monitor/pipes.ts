// A container's stdio FIFOs. The monitor owns the read ends of stdout/stderr (and a
// write end of stdin); the container holds the other ends. Named FIFOs rather than
// anonymous pipes so that a second holder (the daemon) keeps writers from ever getting
// EPIPE while no monitor runs, and a new monitor reopens them by path and reads on.

import { closeSync, constants, existsSync, openSync } from "node:fs";
import { errnoCode, errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import { mkfifo, setNonblock, setPipeSize } from "../sys/process.ts";
import type { StreamName } from "./cri_log.ts";

/** Bigger pipe buffers let a container write on longer while no monitor reads (1 MiB is the default pipe-max-size). */
const PIPE_BYTES = 1 << 20;

export interface FifoPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

export function fifoPaths(dir: string): FifoPaths {
  return { stdin: `${dir}/stdin`, stdout: `${dir}/stdout`, stderr: `${dir}/stderr` };
}

export function makeFifo(path: string): void {
  if (!existsSync(path)) mkfifo(path, 0o600);
}

/** Open the read end without blocking (no writer may exist yet). */
export function openFifoReader(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    setPipeSize(fd, PIPE_BYTES);
  } catch {
    // a smaller buffer works too
  }
  return fd;
}

/** A blocking write end for the container (a reader must be open already). */
export function openFifoWriter(path: string): number {
  return openSync(path, constants.O_WRONLY);
}

/** stdin for the container: a blocking read end (O_NONBLOCK would reach the container's reads). */
export function openStdinForContainer(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  setNonblock(fd, false);
  return fd;
}

export function closeFd(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Chunks one reader may handle in a row before it lets the event loop turn. Bun's
 * stream reads ahead: a chunk it has taken from the pipe lives only in this process
 * until it is in the log, and a monitor killed meanwhile loses it. So a chunk is
 * written the moment it arrives, and only a reader that keeps getting chunks without
 * a turn in between (a flooding container) is made to wait.
 */
const BURST_CHUNKS = 8;

/**
 * Reads one FIFO (or a TTY container's pty master) through the event loop until EOF (every writer closed) and hands each
 * chunk over as it comes: one bounded chunk per turn, so a flooding container cannot
 * hold back the others. The fd stays owned by the caller (Bun does not close it).
 */
export class PipeReader {
  private reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } | undefined;
  private stopped = false;
  /** Resolves at EOF, on a read error, or after stop(). */
  readonly done: Promise<"eof" | "stopped">;

  constructor(
    readonly fd: number,
    readonly stream: StreamName,
    onChunk: (stream: StreamName, chunk: Uint8Array) => void,
    containerId: string,
  ) {
    this.done = this.run(onChunk, containerId);
  }

  private async run(onChunk: (stream: StreamName, chunk: Uint8Array) => void, containerId: string): Promise<"eof" | "stopped"> {
    const reader = Bun.file(this.fd).stream().getReader();
    this.reader = reader;
    // Chunks handled since the event loop last turned (reset by a setImmediate).
    let burst = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || value === undefined || this.stopped) break;
        try {
          onChunk(this.stream, value);
        } catch (err) {
          log.with({ component: "monitor", container: containerId }).error("log write failed", { stream: this.stream, err: errorMessage(err) });
        }
        // While a pipe stays full, Bun's stream hands out chunk after chunk in
        // microtasks, which would starve the socket, timers, SIGCHLD and every other
        // container: past a burst, back to the event loop before the next chunk.
        if (burst++ === 0) setImmediate(() => (burst = 0));
        if (burst > BURST_CHUNKS) {
          await nextTurn();
          burst = 0;
        }
      }
    } catch (err) {
      // EIO is how a pty master reads once every process closed the terminal: its EOF.
      if (!this.stopped && errnoCode(err) !== "EIO") log.with({ component: "monitor", container: containerId }).warn("reading container output failed", { stream: this.stream, err: errorMessage(err) });
    }
    return this.stopped ? "stopped" : "eof";
  }

  /** Stop reading; the fd stays open (to close, or to hand to a re-exec'd monitor). */
  async stop(): Promise<void> {
    this.stopped = true;
    try {
      await this.reader?.cancel();
    } catch {
      // ended already
    }
    await this.done;
  }
}
