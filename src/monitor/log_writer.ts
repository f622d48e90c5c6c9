// One container's CRI log file: both streams' encoders, appends with plain synchronous
// writes (a local file; conmon does the same), and reopen for the kubelet's rotation.

import { closeSync, constants, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { internal, errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import { realtimeNs } from "../sys/process.ts";
import { CriLineEncoder, formatTimestamp, type StreamName } from "./cri_log.ts";

const LOG_MODE = 0o640;

function openLog(path: string): number {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  return openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, LOG_MODE);
}

/** The current timestamp in the local zone, as CRI logs carry it. */
export function nowTimestamp(): string {
  return formatTimestamp(realtimeNs(), -new Date().getTimezoneOffset());
}

export class ContainerLog {
  private fd: number;
  private readonly encoders: Record<StreamName, CriLineEncoder>;
  private writeFailed = false;
  private readonly log;

  constructor(
    readonly id: string,
    readonly path: string,
  ) {
    this.log = log.with({ component: "monitor", container: id });
    try {
      this.fd = openLog(path);
    } catch (err) {
      throw internal(`open the log file ${path} of container ${id}: ${errorMessage(err)}`, err);
    }
    this.encoders = { stdout: new CriLineEncoder("stdout"), stderr: new CriLineEncoder("stderr") };
  }

  /** Bytes a stream produced. */
  write(stream: StreamName, chunk: Uint8Array): void {
    this.append(this.encoders[stream].push(chunk, nowTimestamp()));
  }

  /** A stream ended (or is handed over): its unterminated line goes out as P. */
  flush(stream: StreamName): void {
    this.append(this.encoders[stream].end(nowTimestamp()));
  }

  /** Close and open the path again (the kubelet renamed the file). On failure the old file stays in use. */
  reopen(): void {
    let fd: number;
    try {
      fd = openLog(this.path);
    } catch (err) {
      throw internal(`reopen the log file ${this.path} of container ${this.id}: ${errorMessage(err)}`, err);
    }
    const old = this.fd;
    this.fd = fd;
    this.writeFailed = false;
    closeQuietly(old);
  }

  close(): void {
    if (this.fd >= 0) closeQuietly(this.fd);
    this.fd = -1;
  }

  private append(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.fd < 0) return;
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
      this.writeFailed = false;
    } catch (err) {
      // A full disk must not stop the container: drop the bytes, say so once per outage.
      if (!this.writeFailed) this.log.warn("cannot write the container log; dropping output until writes succeed", { path: this.path, err: errorMessage(err) });
      this.writeFailed = true;
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
