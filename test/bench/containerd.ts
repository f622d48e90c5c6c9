// Debian's containerd (1.6.x) with its CRI plugin, started in temp dirs so that
// benchmarks compare crib with it in the same run and on the same machine. Nothing
// outside the temp dir is touched: own root, state, gRPC socket, CNI conf dir,
// /opt plugin dir, netns mounts under the state dir.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { CriClient, CriError } from "../../src/ctl/client.ts";

export const CONTAINERD_BIN = "/usr/bin/containerd";

export interface ContainerdOptions {
  /** "127.0.0.1:5123": registries reached over plain HTTP (hosts.toml in a certs.d dir). */
  registryHosts?: string[];
  /** Registry name -> plain-HTTP "host:port" serving it, e.g. { "registry.k8s.io": "127.0.0.1:5123" }. */
  mirrors?: Record<string, string>;
  /** Pause image for sandboxes; the default names one that is never pulled by a pull benchmark. */
  sandboxImage?: string;
  /** containerd's log level (default "warn"); its log goes to <dir>/containerd.log. */
  logLevel?: string;
  /** How long to wait for CRI Version to answer (default 30 s). */
  startTimeoutMs?: number;
}

export interface ContainerdInstance {
  /** The temp dir holding everything below. */
  dir: string;
  /** Path of the gRPC socket (CriClient takes `unix://${socket}`). */
  socket: string;
  root: string;
  state: string;
  /** CNI conf dir (empty at start): a pod benchmark writes its conflist here. */
  cniConfDir: string;
  configPath: string;
  logPath: string;
  pid: number;
  client: CriClient;
  /** The last part of containerd's log, for error messages. */
  logTail(chars?: number): string;
  /** Removes pods still there, stops containerd, kills leftovers, unmounts and deletes the temp dir. */
  stop(): Promise<void>;
}

/** A TOML basic string (JSON escapes are a subset TOML accepts for these paths). */
function tomlString(s: string): string {
  return JSON.stringify(s);
}

/**
 * hosts.toml in containerd's certs.d format (config_path), which 1.6 honours per pull:
 * requests for the registry go to `http://<endpoint>`. (1.6 would also fall back to
 * plain HTTP for 127.0.0.1 on its own; the file makes it explicit and allows mirrors.)
 */
function hostsToml(endpoint: string): string {
  const url = `http://${endpoint}`;
  return [`server = ${tomlString(url)}`, "", `[host.${tomlString(url)}]`, '  capabilities = ["pull", "resolve"]', ""].join("\n");
}

function configToml(p: { root: string; state: string; socket: string; optDir: string; cniConfDir: string; certsDir: string; sandboxImage: string; logLevel: string }): string {
  return `version = 2
root = ${tomlString(p.root)}
state = ${tomlString(p.state)}
oom_score = 0
# Snapshotters other than overlayfs only add start-up probes and log noise here.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${tomlString(p.socket)}

# ttrpc defaults to <grpc address>.ttrpc, inside the temp dir too.
[ttrpc]
  address = ${tomlString(`${p.socket}.ttrpc`)}

[debug]
  address = ""
  level = ${tomlString(p.logLevel)}

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = ${tomlString(p.optDir)}

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = ${tomlString(p.sandboxImage)}
    # CAP_SYS_RESOURCE is missing on the test VMs: without clamping, sandboxes fail
    # when runc lowers oom_score_adj.
    restrict_oom_score_adj = true
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    netns_mounts_under_state_dir = true
    max_concurrent_downloads = 3

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = ${tomlString(p.cniConfDir)}

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ${tomlString(p.certsDir)}
`;
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const found: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    const mountPoint = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mountPoint === dir || mountPoint.startsWith(prefix)) found.push(mountPoint);
  }
  return found.sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything under `dir`; returns what could not be unmounted. */
export function unmountUnder(dir: string): string[] {
  for (const m of mountsUnder(dir)) {
    Bun.spawnSync(["umount", "-l", m], { stdout: "ignore", stderr: "ignore" });
  }
  return mountsUnder(dir);
}

/** PIDs of processes whose command line mentions `needle` (containerd's shims name its socket). */
export function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) pids.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function readTail(path: string, chars: number): string {
  try {
    const text = readFileSync(path, "utf8");
    return text.slice(-chars);
  } catch {
    return "(no log)";
  }
}

async function waitForCri(client: CriClient, proc: Bun.Subprocess, logTail: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`containerd exited (${proc.exitCode ?? proc.signalCode}) before answering CRI Version:\n${logTail()}`);
    }
    try {
      await client.call("RuntimeService", "Version", { version: "v1" }, { timeoutMs: 1000 });
      return;
    } catch (err) {
      // UNIMPLEMENTED means containerd runs but its CRI plugin did not load: no point waiting.
      if (err instanceof CriError && err.code === status.UNIMPLEMENTED) {
        throw new Error(`containerd is up but its CRI plugin did not load (Version: ${err.message}):\n${logTail()}`);
      }
      last = String(err);
    }
    await Bun.sleep(20);
  }
  throw new Error(`containerd did not answer CRI Version within ${timeoutMs} ms (last error: ${last}):\n${logTail()}`);
}

async function stopPods(client: CriClient): Promise<void> {
  try {
    const { items } = await client.call("RuntimeService", "ListPodSandbox", {}, { timeoutMs: 5000 });
    for (const pod of items) {
      await client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: pod.id }, { timeoutMs: 30_000 }).catch(() => undefined);
      await client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: pod.id }, { timeoutMs: 30_000 }).catch(() => undefined);
    }
  } catch {
    // containerd not answering: the kill below still cleans up.
  }
}

async function waitExit(proc: Bun.Subprocess, ms: number): Promise<boolean> {
  const timer = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms));
  return await Promise.race([proc.exited.then(() => true), timer]);
}

export async function startContainerd(opts: ContainerdOptions = {}): Promise<ContainerdInstance> {
  if (!existsSync(CONTAINERD_BIN)) throw new Error(`${CONTAINERD_BIN} is missing: apt-get install containerd`);
  const dir = mkdtempSync(join(tmpdir(), "crib-bench-containerd-"));
  const root = join(dir, "root");
  const state = join(dir, "state");
  const socket = join(dir, "containerd.sock");
  const optDir = join(dir, "opt");
  const cniConfDir = join(dir, "cni", "net.d");
  const certsDir = join(dir, "certs.d");
  const configPath = join(dir, "config.toml");
  const logPath = join(dir, "containerd.log");
  for (const d of [root, state, optDir, cniConfDir, certsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const hosts: [string, string][] = [...(opts.registryHosts ?? []).map((h): [string, string] => [h, h]), ...Object.entries(opts.mirrors ?? {})];
  for (const [name, endpoint] of hosts) {
    mkdirSync(join(certsDir, name), { recursive: true });
    writeFileSync(join(certsDir, name, "hosts.toml"), hostsToml(endpoint));
  }
  writeFileSync(
    configPath,
    configToml({
      root,
      state,
      socket,
      optDir,
      cniConfDir,
      certsDir,
      sandboxImage: opts.sandboxImage ?? "registry.k8s.io/pause:3.6",
      logLevel: opts.logLevel ?? "warn",
    }),
  );

  // One append-mode fd for both streams, so neither truncates the other.
  const logFd = openSync(logPath, "a");
  const proc = Bun.spawn([CONTAINERD_BIN, "--config", configPath], { stdin: "ignore", stdout: logFd, stderr: logFd });
  closeSync(logFd);
  const logTail = (chars = 3000): string => readTail(logPath, chars);
  const client = new CriClient(`unix://${socket}`);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (proc.exitCode === null && proc.signalCode === null) await stopPods(client);
    client.close();
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      if (!(await waitExit(proc, 10_000))) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    }
    // Shims outlive containerd by design; they name our socket in their arguments.
    for (const pid of pidsMentioning(socket)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    const left = unmountUnder(dir);
    if (left.length > 0) throw new Error(`containerd temp dir ${dir} still has mounts after umount -l: ${left.join(", ")}`);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitForCri(client, proc, logTail, opts.startTimeoutMs ?? 30_000);
  } catch (err) {
    const tail = logTail();
    await stop().catch(() => undefined);
    throw err instanceof Error ? err : new Error(`${String(err)}\n${tail}`);
  }
  return { dir, socket, root, state, cniConfDir, configPath, logPath, pid: proc.pid, client, logTail, stop };
}
