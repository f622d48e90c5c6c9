// What a crib daemon left on the machine, read from the kernel and from runc
// and the monitor themselves: mounts, runc containers, the monitor's list and
// the daemon's helper processes. Tests compare these with what the CRI lists.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MonitorClient } from "../../src/monitor/client.ts";
import type { ContainerState as MonitorContainerState } from "../../src/monitor/protocol.ts";

/** Mount points under `dir` (from /proc/self/mountinfo, octal escapes undone). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(prefix));
}

export interface RuncEntry {
  id: string;
  status: string;
  pid: number;
}

/** `runc --root ROOT list`: the containers runc itself knows. */
export function runcList(root: string): RuncEntry[] {
  const r = Bun.spawnSync(["runc", "--root", root, "list", "--format", "json"], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`runc --root ${root} list failed: ${r.stderr.toString()}`);
  const parsed = JSON.parse(r.stdout.toString() || "null") as RuncEntry[] | null;
  return (parsed ?? []).map((e) => ({ id: e.id, status: e.status, pid: e.pid }));
}

/** The runc root crib uses for its default handler under a config's `state`. */
export function runcRoot(state: string): string {
  return join(state, "runtime", "runc");
}

/** The monitor's own list of containers (connects to its socket; [] when no monitor runs). */
export async function monitorList(state: string): Promise<MonitorContainerState[]> {
  let c: MonitorClient;
  try {
    c = await MonitorClient.connect(join(state, "monitor", "monitor.sock"));
  } catch {
    return [];
  }
  try {
    return await c.list();
  } finally {
    c.close();
  }
}

/** The monitor's pid from its pid file, or 0. */
export function monitorPid(state: string): number {
  try {
    return Number(readFileSync(join(state, "monitor", "monitor.pid"), "utf8").trim());
  } catch {
    return 0;
  }
}

export interface TaggedProcess {
  pid: number;
  argv: string[];
}

/**
 * Processes whose environment holds `CRIB_TEST_TAG=<tag>`: a daemon started
 * with the tag in its environment (startCrib's `env`) passes it to its
 * monitor, its pause processes and the helpers it runs, so this finds
 * everything a test's daemons started, whoever their parent is now.
 */
export function taggedProcesses(tag: string): TaggedProcess[] {
  const needle = Buffer.from(`CRIB_TEST_TAG=${tag}\0`);
  const out: TaggedProcess[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`);
      if (env.indexOf(needle) < 0) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (/^\d+ \(.*\) Z /.test(stat)) continue; // a zombie holds nothing
      out.push({ pid: Number(name), argv });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** The inode of a process's PID namespace ("pid:[N]" -> N), or undefined. */
export function pidNamespaceOf(pid: number): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/pid`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The inode of a pinned namespace file (a bind mount of an nsfs inode), or undefined. */
export function pinnedInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Host interfaces enslaved to `bridge` (the pods' host-side veths). */
export function bridgePorts(bridge: string): string[] {
  const r = Bun.spawnSync(["ip", "-o", "link", "show", "master", bridge], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) return [];
  return r.stdout
    .toString()
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(": ")[1]!.split("@")[0]!);
}

/** Resident set size of a process in bytes (VmRSS), or 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) a process used so far, in clock ticks (/proc/PID/stat fields 14 and 15). */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** A CNI bridge network of its own for a test: confDir, host-local dataDir, bridge name, subnet. */
export interface TestBridge {
  confDir: string;
  dataDir: string;
  name: string;
  bridge: string;
  subnet: string;
  /** IPs host-local holds for the network. */
  allocated(): string[];
  /** Host-side veths on the bridge. */
  ports(): string[];
  /** Delete the bridge link (after every pod is gone). */
  remove(): void;
}

/** Write a bridge + host-local conflist under `dir` (no portmap: no iptables work per pod). */
export function testBridge(dir: string, label: string): TestBridge {
  const tag = Math.floor(Math.random() * 0xffff).toString(16).padStart(4, "0");
  const a = 100 + Math.floor(Math.random() * 100);
  const b = Math.floor(Math.random() * 256);
  const confDir = join(dir, "net.d");
  const dataDir = join(dir, "ipam");
  const name = `crib-${label}-${tag}`;
  const bridge = `cni-${label.slice(0, 5)}-${tag}`;
  const subnet = `10.${a}.${b}.0/24`;
  mkdirSync(confDir, { recursive: true });
  writeFileSync(
    join(confDir, `10-${label}.conflist`),
    JSON.stringify({
      cniVersion: "1.0.0",
      name,
      plugins: [{ type: "bridge", bridge, isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir } }],
    }),
  );
  return {
    confDir, dataDir, name, bridge, subnet,
    allocated() {
      const d = join(dataDir, name);
      return existsSync(d) ? readdirSync(d).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)) : [];
    },
    ports: () => bridgePorts(bridge),
    remove() {
      Bun.spawnSync(["ip", "link", "del", bridge], { stdout: "ignore", stderr: "ignore" });
    },
  };
}
