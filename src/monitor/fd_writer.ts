// Writes to a non-blocking fd (a stdin FIFO, a pty master) in order, without ever
// blocking the event loop: a full pipe or terminal (EAGAIN) is retried a moment
// later. A process that never reads its stdin makes writes wait, not the monitor.

import { writeSync } from "node:fs";
import { errnoCode, failedPrecondition } from "../errors.ts";

const RETRY_MS = 5;

export class FdWriter {
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /** Bytes accepted by write() and not yet written. */
  pending = 0;

  constructor(
    private readonly fd: number,
    private readonly what: string,
  ) {}

  /** Resolves once `chunk` (and everything before it) is written; rejects if the reader is gone. */
  write(chunk: Uint8Array): Promise<void> {
    this.pending += chunk.length;
    const run = this.chain.then(() => this.writeAll(chunk)).finally(() => {
      this.pending -= chunk.length;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Stop: writes not yet done fail (the fd itself belongs to the caller). */
  close(): void {
    this.closed = true;
  }

  private async writeAll(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.closed) throw failedPrecondition(`${this.what} is closed`);
      try {
        off += writeSync(this.fd, chunk, off, chunk.length - off);
      } catch (err) {
        const code = errnoCode(err);
        if (code === "EAGAIN" || code === "EWOULDBLOCK" || code === "EINTR") {
          await Bun.sleep(RETRY_MS);
          continue;
        }
        throw failedPrecondition(`write to ${this.what}: ${code ?? (err as Error).message}`, err);
      }
    }
  }
}
