// `crib monitor --state DIR [--log-level L]`: one per node, the parent (subreaper) of
// every container, holder of their stdio, writer of their logs and exit codes. Started
// detached by the daemon and outlives it; upgraded in place by re-exec'ing itself.

import { endStartupJitPolicy } from "../util/startup_jit.ts";
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync, constants } from "node:fs";
import { boolFlag, flag, UsageError } from "./args.ts";
import { parseCommand } from "./command.ts";
import { MONITOR } from "./faces.ts";
import { errorMessage, failedPrecondition } from "../errors.ts";
import { LOG_LEVELS, log, setLogLevel, type LogLevel } from "../log/logger.ts";
import { setChildSubreaper } from "../sys/prctl.ts";
import { execve, listenUnix, realtimeNs, setCloexec, setsid, tryLockExclusive } from "../sys/process.ts";
import { BUILD } from "../version.ts";
import { Monitor, type InheritedPipes } from "../monitor/monitor.ts";
import { socketPath } from "../monitor/protocol.ts";
import { MonitorServer } from "../monitor/server.ts";
import { runCommand } from "../monitor/spawn.ts";

const OOM_SCORE_ADJ = -999;

/** What a re-exec'd monitor inherits, in this env var. */
const INHERIT_ENV = "CRIB_MONITOR_INHERIT";

interface Inherited {
  listenFd: number;
  lockFd: number;
  generation: number;
  pipes: InheritedPipes;
}

function readInherited(): Inherited | undefined {
  const raw = process.env[INHERIT_ENV];
  delete process.env[INHERIT_ENV];
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as Inherited;
    if (typeof v.listenFd === "number" && typeof v.lockFd === "number" && typeof v.pipes === "object") return v;
  } catch {
    // fall through
  }
  log.with({ component: "monitor" }).warn(`ignoring a malformed ${INHERIT_ENV}`);
  return undefined;
}

/** Lower our OOM score as conmon does; without CAP_SYS_RESOURCE keep what we have and say so once. */
function protectFromOom(): void {
  try {
    writeFileSync("/proc/self/oom_score_adj", String(OOM_SCORE_ADJ));
  } catch (err) {
    log.with({ component: "monitor" }).warn("cannot lower oom_score_adj (CAP_SYS_RESOURCE missing?); keeping the inherited value", { wanted: OOM_SCORE_ADJ, err: errorMessage(err) });
  }
}

function writePidFile(path: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o644);
  try {
    writeSync(fd, `${process.pid}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export async function runMonitor(argv: string[]): Promise<number> {
  const args = parseCommand(argv, MONITOR);
  const stateDir = flag(args, "state");
  if (stateDir === undefined || !stateDir.startsWith("/")) throw new UsageError("monitor needs --state DIR (an absolute path)");
  const level = flag(args, "log-level") ?? "info";
  if (!LOG_LEVELS.includes(level as LogLevel)) throw new UsageError(`unknown log level ${JSON.stringify(level)}`);
  setLogLevel(level as LogLevel);
  if (boolFlag(args, "preflight")) return 0;
  const mlog = log.with({ component: "monitor" });
  const inherited = readInherited();

  if (inherited === undefined) {
    try {
      setsid(); // no controlling terminal, no signals meant for the daemon's group
    } catch {
      // already a session leader (Bun.spawn detached does setsid)
    }
  }
  mkdirSync(`${stateDir}/monitor`, { recursive: true, mode: 0o700 });

  // One monitor per state dir: the flock is held for the process's life (kept across re-exec).
  let lockFd = inherited?.lockFd ?? -1;
  if (inherited === undefined) {
    lockFd = openSync(`${stateDir}/monitor.lock`, constants.O_RDWR | constants.O_CREAT, 0o600);
    if (!tryLockExclusive(lockFd)) {
      mlog.info("another monitor already serves this state dir; exiting", { state: stateDir });
      closeSync(lockFd);
      return 0;
    }
  }

  // The monitor must never be the reason a container dies.
  process.on("SIGPIPE", () => undefined);
  process.on("SIGHUP", () => undefined);
  process.on("uncaughtException", (err) => mlog.error("uncaught exception (continuing)", { err: errorMessage(err), stack: err.stack }));
  process.on("unhandledRejection", (err) => mlog.error("unhandled rejection (continuing)", { err: errorMessage(err) }));
  protectFromOom();
  setChildSubreaper(true);

  const monitor = new Monitor(stateDir);
  await monitor.recover(inherited?.pipes ?? {});

  const sock = socketPath(stateDir);
  let listenFd = inherited?.listenFd ?? -1;
  if (inherited === undefined) {
    rmSync(sock, { force: true }); // the lock says no monitor owns it
    const old = process.umask(0o177);
    try {
      listenFd = listenUnix(sock);
    } finally {
      process.umask(old);
    }
    chmodSync(sock, 0o600);
  }

  const startedAtNs = realtimeNs().toString();
  const generation = inherited?.generation ?? 0;
  let upgrading = false;
  const server = new MonitorServer(monitor, {
    info: () => ({ pid: process.pid, version: BUILD, startedAtNs, generation, containers: monitor.count() }),
    preflight: async (command) => {
      if (upgrading) throw failedPrecondition("an upgrade is already under way");
      const argv2 = [...command, "--state", stateDir, "--preflight"];
      let res;
      try {
        res = await runCommand(argv2, 30_000);
      } catch (err) {
        throw failedPrecondition(`upgrade refused: ${argv2.join(" ")} cannot run: ${errorMessage(err)}`);
      }
      if (res.code !== 0) throw failedPrecondition(`upgrade refused: ${argv2.join(" ")} exited with ${res.code}: ${(res.stderr || res.stdout).trim().slice(-500)}`);
    },
    upgrade: (command) => {
      if (upgrading) return;
      upgrading = true;
      void reexec(command).finally(() => {
        upgrading = false;
      });
    },
  });

  /** Re-exec in place: same pid, so containers stay our children and keep their stdio readers. */
  async function reexec(command: string[]): Promise<void> {
    if (!(await monitor.drain(30_000))) {
      mlog.error("upgrade aborted: requests still running after 30 s");
      monitor.undrain();
      return;
    }
    const pipes = await monitor.handOver();
    server.closeConnections();
    await Bun.sleep(0);
    const fds = [listenFd, lockFd, ...Object.values(pipes).flatMap((p) => Object.values(p))];
    const exe = command[0]!.includes("/") ? command[0]! : (Bun.which(command[0]!) ?? command[0]!);
    const argv2 = [...command, "--state", stateDir!, "--log-level", level];
    const env = { ...process.env, [INHERIT_ENV]: JSON.stringify({ listenFd, lockFd, generation: generation + 1, pipes } satisfies Inherited) };
    mlog.info("upgrading: re-exec'ing the monitor", { argv: argv2, containers: monitor.count() });
    try {
      for (const fd of fds) setCloexec(fd, false);
      execve(exe, argv2, Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])));
    } catch (err) {
      mlog.error("upgrade failed; this monitor keeps running", { exe, err: errorMessage(err) });
      for (const fd of fds) {
        try {
          setCloexec(fd, true);
        } catch {
          // closed
        }
      }
      monitor.resume();
      monitor.undrain();
    }
  }

  await server.listen(listenFd);
  writePidFile(`${stateDir}/monitor.pid`);
  monitor.reaper.start();
  monitor.reaper.sweep();
  endStartupJitPolicy(); // its log and exit handling tier up as usual from here
  mlog.info("monitor is serving", { socket: sock, pid: process.pid, generation, containers: monitor.count() });

  // SIGTERM/SIGINT end the monitor, never the containers: a new monitor takes them over.
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  mlog.info("monitor stopping; containers keep running", { signal });
  await monitor.handOver();
  return 0;
}
