// The daemon's link to the node's monitor: started on first need, reconnected
// (and restarted if it died) when the connection drops. Exits it reports go
// to the container component.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { log } from "../log/logger.ts";
import { ensureMonitor, type ExitInfo, type MonitorClient } from "../monitor/client.ts";
import { BUILD } from "../version.ts";

const logger = log.with({ component: "monitor-link" });

/** The argv that runs this binary's monitor face, compiled or from source. */
export function monitorCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return compiled ? [process.execPath, "monitor"] : [process.execPath, Bun.main, "monitor"];
}

export class MonitorLink {
  private client: Promise<MonitorClient> | undefined;
  onExit: (id: string, exit: ExitInfo) => void = () => {};
  /** After a reconnect: containers may have exited unseen; the owner re-reads them. */
  onReconnect: () => Promise<void> = async () => {};
  private stopping = false;

  constructor(private readonly state: string, private readonly logLevel: string) {}

  get(): Promise<MonitorClient> {
    this.client ??= this.connect();
    return this.client;
  }

  /** Whether we hold a connection (without starting a monitor). */
  connected(): boolean {
    return this.client !== undefined;
  }

  /** Whether a monitor may be running: its socket exists. */
  socketExists(): boolean {
    return existsSync(join(this.state, "monitor.sock"));
  }

  private async connect(): Promise<MonitorClient> {
    try {
      let c = await ensureMonitor({ state: this.state, command: monitorCommand(), logLevel: this.logLevel });
      // A monitor left running by another crib build is upgraded in place: it
      // re-execs this binary and keeps its containers (it stays their parent).
      const info = await c.info();
      if (info.version !== BUILD) {
        logger.info("upgrading the monitor to this build", { from: info.version, to: BUILD, containers: info.containers });
        await c.upgrade(monitorCommand());
        c.close();
        c = await ensureMonitor({ state: this.state, command: monitorCommand(), logLevel: this.logLevel });
      }
      c.onExit((id, exit) => this.onExit(id, exit));
      c.onClose(() => {
        this.client = undefined;
        if (this.stopping) return;
        logger.warn("lost the monitor connection; reconnecting (a new monitor is started if it died)");
        setTimeout(() => void this.reconnect(), 100);
      });
      return c;
    } catch (e) {
      this.client = undefined;
      throw e;
    }
  }

  private async reconnect(): Promise<void> {
    try {
      await this.get();
      await this.onReconnect();
    } catch (e) {
      logger.error("could not reach a monitor; retrying", { error: e });
      setTimeout(() => void this.reconnect(), 1000);
    }
  }

  /** Close the connection; the monitor keeps running with the containers. */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.client) (await this.client.catch(() => undefined))?.close();
  }
}
