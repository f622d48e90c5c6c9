// `crib serve`: the daemon.
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { loadConfig } from "../config/config.ts";
import { compilePolicy, type Policy } from "../image/trust/keys.ts";
import { errorMessage } from "../errors.ts";
import type { CriContext } from "../cri/context.ts";
import { closeContainerEvents } from "../cri/container_events.ts";
import { createCriServer, listenUnix, type UnixListener } from "../cri/server.ts";
import { ContainerService } from "../container/container_service.ts";
import { registerDaemonGauges } from "../daemon/gauges.ts";
import { MonitorLink } from "../daemon/monitor_link.ts";
import { ImageService } from "../image/image_service.ts";
import { startMetricsEndpoint } from "../metrics/endpoint.ts";
import { socketPath as monitorSocketPath } from "../monitor/protocol.ts";
import { CniManager } from "../pod/cni/manager.ts";
import { PodService } from "../pod/pod_service.ts";
import { openDatabase } from "../state/db.ts";
import { createStatsCollector } from "../stats/stats_collector.ts";
import { StreamingService } from "../stream/service.ts";
import { reloadConfig } from "../daemon/reload.ts";
import { prepareSocketPath, removeSocket, restrictSocket, socketGroupId } from "../daemon/socket.ts";
import { SystemdNotifier } from "../sys/notify.ts";
import { log, setLogLevel } from "../log/logger.ts";
import { COMMIT, VERSION } from "../version.ts";
import { flag, UsageError } from "./args.ts";
import { parseCommand } from "./command.ts";
import { SERVE } from "./faces.ts";


const serveLog = log.with({ component: "daemon" });

export async function serve(argv: string[]): Promise<number> {
  const args = parseCommand(argv, SERVE);
  if (args.positionals.length > 0) throw new UsageError(`serve takes no arguments (got ${args.positionals.join(" ")})`);
  // Taken out of process.env first: children spawned with it must not speak for the daemon.
  const systemd = SystemdNotifier.fromEnv();
  // SIGHUP would end the process by default: catch it from the start.
  let onHup = () => serveLog.warn("SIGHUP while starting: ignored (send it again once crib is serving)");
  process.on("SIGHUP", () => onHup());
  // SIGTERM/SIGINT are caught from the start too: the socket accepts connections before
  // the daemon is done starting, and a stop asked for meanwhile is carried out once it is.
  let stopAsked: string | undefined;
  let onStop = (signal: string) => {
    stopAsked ??= signal;
  };
  process.on("SIGTERM", () => onStop("SIGTERM"));
  process.on("SIGINT", () => onStop("SIGINT"));
  // Bun ends the process on a rejection nobody observed. One request's stray promise
  // must not take the node's runtime down with it: log it as the bug it is, go on.
  process.on("unhandledRejection", (err: unknown) =>
    serveLog.error("unhandled promise rejection (a bug; the daemon goes on)", { err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined }),
  );
  // The policy's key files are read with the config, so a bad key fails start-up naming its line.
  let policy: Policy | undefined;
  const { config, source } = loadConfig(flag(args, "config"), (c) => {
    policy = compilePolicy(c.policy);
  });
  setLogLevel(config.log.level);

  // State dirs are private to root (CVE-2024-25621: world-readable state leaks).
  await mkdir(config.root, { recursive: true, mode: 0o700 });
  await mkdir(config.state, { recursive: true, mode: 0o700 });

  protectFromOomKiller();
  const socketGid = socketGroupId(config.socketGroup); // fails early for an unknown group
  const { replacedStale } = await prepareSocketPath(config.socket);
  if (replacedStale) serveLog.warn("replaced a stale socket left by an earlier daemon", { socket: config.socket });

  const db = openDatabase(config.root);
  const images = new ImageService(config, db, policy);
  await images.init();
  const pods = new PodService(config, db);
  const cni = CniManager.fromConfig(config);
  pods.network = cni;
  const link = new MonitorLink(join(config.state, "monitor"), config.log.level);
  const containers = new ContainerService(config, db, images, pods, () => link.get(), () => link.connected() || link.socketExists());
  link.onExit = (id, exit) => containers.recordExit(id, exit);
  link.onReconnect = () => containers.resync();
  await pods.recover();
  await containers.recover();
  // Stops a crash or reboot cut short: finished in the background, so a hung CNI plugin
  // (60 s per call) does not keep the socket closed; the pods already answer NOTREADY.
  void pods.finishTeardowns();
  // Networks cached for pods with no record (a crash mid-RunPodSandbox): DEL them, in the background.
  void cni.collectOrphans(await cni.orphans((id) => pods.store.get(id) !== undefined));
  const streaming = new StreamingService(config, containers, pods, monitorSocketPath(join(config.state, "monitor")));
  const streamingUrl = await streaming.start();
  const daemon: CriContext = { config, configSource: source, images, pods, containers, cni, streaming, stats: createStatsCollector(config.root, containers.fs) };
  const metrics = startMetricsEndpoint(config.metrics.address); // off unless metrics.address is set
  if (metrics) registerDaemonGauges(daemon);
  const server = createCriServer(daemon);
  const listener = await listenUnix(server, config.socket);
  await restrictSocket(config.socket, socketGid);
  serveLog.info("crib is serving", { version: VERSION, commit: COMMIT, socket: config.socket, streaming: streamingUrl, config: source, pid: process.pid });
  const notifyFailed = (e: Error | undefined) => e && serveLog.warn("cannot notify systemd (NOTIFY_SOCKET)", { socket: systemd.socket, error: e.message });
  notifyFailed(systemd.ready(`serving on ${config.socket}`));
  // SIGHUP (systemctl reload crib): apply what can change without a restart.
  onHup = () => {
    notifyFailed(systemd.reloading());
    reloadConfig(daemon, flag(args, "config"));
    notifyFailed(systemd.ready(`serving on ${config.socket}`));
  };

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      serveLog.info("stopping", { signal });
      notifyFailed(systemd.stopping());
      closeContainerEvents(daemon); // long-lived streams would hold shutdown for its 5 s grace
      metrics?.stop();
      void shutdown(server, listener, config.socket).then(async () => {
        // Interactive execs end with the daemon (their pipes and terminals are ours).
        await streaming.stop();
        await link.close();
        db.close();
        serveLog.info("stopped");
        resolve(0);
      });
    };
    onStop = stop;
    if (stopAsked !== undefined) stop(stopAsked);
  });
}

/**
 * The daemon should be the last thing the OOM killer picks (as conmon and
 * containerd ask). Without CAP_SYS_RESOURCE lowering fails: say so once.
 */
function protectFromOomKiller(): void {
  try {
    writeFileSync("/proc/self/oom_score_adj", "-999");
  } catch (e) {
    serveLog.warn("cannot lower the daemon's oom_score_adj (CAP_SYS_RESOURCE missing?); it keeps the inherited value", { error: e });
  }
}

/** Let in-flight RPCs finish for a moment, then close everything. */
async function shutdown(server: ReturnType<typeof createCriServer>, listener: UnixListener, socket: string): Promise<void> {
  const closed = listener.close();
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 5000);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
  await closed;
  await removeSocket(socket);
}
