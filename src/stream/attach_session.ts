// A streaming attach: the monitor sends a copy of the running container's output over
// a connection of our own (the CRI log keeps getting every byte), stdin goes to the
// monitor's write end of the container's stdin (or its terminal), and resizes reach
// a TTY container's terminal. The attach ends when the container exits or the client
// leaves; a client that cannot keep up loses output, never the container.

import { errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import { MonitorClient } from "../monitor/client.ts";
import type { CommandChannel } from "./command_channel.ts";

const logger = log.with({ component: "stream" });

/** Output queued towards a slow client beyond this is dropped (the log has it). */
const CLIENT_BACKLOG_BYTES = 8 * 1024 * 1024;

export interface AttachTarget {
  containerId: string;
  /** The monitor's socket; the attach uses a connection of its own. */
  monitorSocket: string;
  /** The container was created with stdin_once: the first attach's EOF closes its stdin. */
  stdinOnce: boolean;
}

export async function runAttach(target: AttachTarget, ch: CommandChannel): Promise<void> {
  const id = target.containerId;
  let mon: MonitorClient;
  try {
    mon = await MonitorClient.connect(target.monitorSocket);
  } catch (err) {
    ch.finish({ error: `attach to container ${id}: ${errorMessage(err)}` });
    return;
  }
  let dropping = false;
  let stdinChain: Promise<void> = Promise.resolve();
  const ended = new Promise<void>((resolve) => {
    const forward = (stream: "stdout" | "stderr", chunk: Uint8Array) => {
      if (ch.backlog() > CLIENT_BACKLOG_BYTES) {
        if (!dropping) logger.warn("an attached client is not keeping up; dropping output it has not read (the log keeps everything)", { container: id });
        dropping = true;
        return;
      }
      dropping = false;
      void (stream === "stdout" ? ch.writeStdout(chunk) : ch.writeStderr(chunk));
    };
    mon.onClose(resolve);
    mon
      .attach(id, { stdout: ch.options.stdout, stderr: ch.options.stderr }, { output: forward, end: resolve })
      .then((info) => {
        if (ch.options.stdin && !info.stdin) logger.debug("attach asked for stdin but the container has none", { container: id });
      })
      .catch((err: unknown) => {
        ch.finish({ error: `attach to container ${id}: ${errorMessage(err)}` });
        resolve();
      });
  });
  let clientGone = false;
  ch.receive({
    stdin: (chunk) => {
      if (!ch.options.stdin) return;
      ch.pauseInput();
      stdinChain = stdinChain
        .then(() => mon.writeStdin(id, chunk))
        .catch((err: unknown) => logger.debug("attach stdin not delivered", { container: id, err: errorMessage(err) }))
        .finally(() => ch.resumeInput());
    },
    stdinEnd: () => {
      if (!ch.options.stdin || !target.stdinOnce) return;
      // stdin_once: the container reads EOF once its first attach session ends its input.
      stdinChain = stdinChain.then(() => mon.closeStdin(id)).catch(() => undefined);
    },
    resize: (size) => {
      mon.resize(id, size.width, size.height).catch((err: unknown) => logger.debug("attach resize failed", { container: id, err: errorMessage(err) }));
    },
    closed: () => {
      clientGone = true;
      mon.close();
    },
  });
  await ended;
  await stdinChain;
  mon.close();
  if (!clientGone) ch.finish({ exitCode: 0 });
}
