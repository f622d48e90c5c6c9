// Pod networking through CNI plugins, run by crib itself: ADD when a pod
// starts, DEL when it stops (from the cached config and result, so it works
// after restarts and config changes), CHECK on demand.
import { childEnv } from "../../util/child_env.ts";
import { statSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import type { Config } from "../../config/config.ts";
import type { PodSandboxConfig } from "../../protocol/types.ts";
import { deadlineExceeded, errorMessage, failedPrecondition, internal, invalidArgument } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import { capabilityArgs, cniArgs, IFNAME, pluginEnv, pluginStdin, type CapabilityArgs, type CniCommand } from "./args.ts";
import { CniCache, type CacheEntry } from "./cache.ts";
import { confDirFor, type ConfDir } from "./conf_dir.ts";
import { networkFromObject, networkToObject, passesPrevResultOnDel, supportsCheck, type JsonObject, type NetworkList, type PluginConfig } from "./config.ts";
import { findPlugin, PluginFailure, runPlugin } from "./exec.ts";
import { convertResult, describePluginError, parseResult, podIps, type CniResult } from "./result.ts";

const logger = log.with({ component: "cni" });

/** Local plugins answer in milliseconds; one that has not in a minute is stuck and is killed. */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 60_000;

export interface PodNetworkRequest { podId: string; config: PodSandboxConfig; netns: string }

export interface CniManagerOptions { confDir: string; binDirs: string[]; cacheDir: string; pluginTimeoutMs?: number }

/** Who a plugin run is for, for messages. */
interface Target { podId: string; pod: string; network: NetworkList; file: string }

export class CniManager {
  private readonly dir: ConfDir;
  private readonly cache: CniCache;
  private readonly timeoutMs: number;
  private readonly locks = new Map<string, Promise<unknown>>();
  private podCidrs: string[] = [];

  constructor(private readonly opts: CniManagerOptions) {
    this.dir = confDirFor(opts);
    this.cache = new CniCache(opts.cacheDir);
    this.timeoutMs = opts.pluginTimeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
  }

  static fromConfig(config: Config): CniManager {
    return new CniManager({ confDir: config.cni.confDir, binDirs: config.cni.binDirs, cacheDir: join(config.root, "cni", "cache") });
  }

  /** The node's pod CIDR(s) from UpdateRuntimeConfig; kept for a future config template. */
  setPodCidr(cidr: string): void {
    const cidrs = cidr.split(",").map((c) => c.trim()).filter((c) => c !== "");
    for (const c of cidrs) {
      const [addr, bits] = c.split("/");
      const max = addr && isIP(addr) === 6 ? 128 : 32;
      if (!addr || !isIP(addr) || bits === undefined || !/^\d+$/.test(bits) || Number(bits) > max) {
        throw invalidArgument(`UpdateRuntimeConfig: pod CIDR ${JSON.stringify(c)} is not an address/prefix`);
      }
    }
    if (cidrs.join(",") === this.podCidrs.join(",")) return;
    this.podCidrs = cidrs;
    logger.info("pod CIDR from the kubelet", { podCidr: cidrs.join(",") });
  }

  podCidr(): string[] {
    return [...this.podCidrs];
  }

  /**
   * ADD the pod to the network; returns its IPs (first IPv4 first). With no
   * network config at all the pod keeps loopback only; an unusable config is
   * an error. A failed ADD is rolled back with DEL before the error is thrown.
   */
  setUp(req: PodNetworkRequest): Promise<string[]> {
    return this.locked(req.podId, async () => {
      const pod = podName(req.config, req.podId);
      const state = await this.dir.current();
      if (state.kind === "none") {
        logger.warn("no CNI network config: the pod gets loopback only", { pod: req.podId, name: pod, reason: state.message });
        return [];
      }
      if (state.kind === "unusable") throw failedPrecondition(`cannot set up the network of pod ${pod}: ${state.message}`);
      const entry: CacheEntry = {
        kind: "crib-cni-cache", version: 1, podId: req.podId, ifName: IFNAME, netns: req.netns, file: state.file,
        network: networkToObject(state.network), cniArgs: cniArgs(req.podId, req.config), capabilityArgs: capabilityArgs(req.config), result: null,
      };
      const target: Target = { podId: req.podId, pod, network: state.network, file: state.file };
      // Recorded first: a crash during ADD still leaves what DEL needs.
      await this.cache.write(entry);
      let result: CniResult;
      try {
        result = await this.addList(target, entry);
      } catch (e) {
        await this.rollBack(target, entry);
        throw e;
      }
      await this.cache.write({ ...entry, result: result.raw });
      const ips = podIps(result, IFNAME);
      logger.info("pod network set up", { pod: req.podId, name: pod, network: state.network.name, ips });
      return ips;
    });
  }

  /** DEL the pod from the network it was added to. Idempotent: nothing cached, nothing to do. */
  tearDown(podId: string): Promise<void> {
    return this.locked(podId, async () => {
      let entry: CacheEntry | undefined;
      try {
        entry = await this.cache.read(podId);
      } catch (e) {
        logger.error("unreadable CNI cache entry: tearing down with the current network config", { pod: podId, error: errorMessage(e) });
        entry = await this.currentConfigEntry(podId);
        if (!entry) {
          await this.cache.remove(podId);
          return;
        }
      }
      if (!entry) {
        await this.cache.remove(podId); // at most a temp file of a write a crash cut short
        return;
      }
      const network = networkFromObject(entry.network);
      const pod = podNameFromArgs(entry.cniArgs, podId);
      // A netns gone (reboot, unpinned) is passed as "": plugins then release what lives outside it (IPs, iptables rules).
      const live = isNetns(entry.netns) ? entry.netns : "";
      await this.delList({ podId, pod, network, file: entry.file }, { ...entry, netns: live }, entry.result ?? undefined);
      await this.cache.remove(podId);
      logger.info("pod network torn down", { pod: podId, name: pod, network: network.name, netns: live || "(gone)" });
    });
  }

  /**
   * CHECK the pod's attachment, where the network asks for it (0.4.0+ and not
   * disableCheck). Resolves true when it ran and passed, false when not applicable.
   */
  check(podId: string): Promise<boolean> {
    return this.locked(podId, async () => {
      const entry = await this.cache.read(podId);
      if (!entry) return false;
      const network = networkFromObject(entry.network);
      if (!supportsCheck(network)) return false;
      const pod = podNameFromArgs(entry.cniArgs, podId);
      const target: Target = { podId, pod, network, file: entry.file };
      if (!entry.result) throw failedPrecondition(`CNI CHECK of pod ${pod}: no ADD result is recorded for network "${network.name}"`);
      const prev = convertResult(entry.result, network.cniVersion);
      for (const p of network.plugins) await this.exec(target, p, "CHECK", entry, prev);
      return true;
    });
  }

  /**
   * Pods with a cached network but no record (a crash between ADD and the pod
   * record). Listed before serving, so a RunPodSandbox in flight is never among them.
   */
  async orphans(exists: (podId: string) => boolean): Promise<string[]> {
    return (await this.cache.podIds()).filter((id) => !exists(id));
  }

  /** DEL the networks of `podIds` (from orphans()); failures are logged. */
  async collectOrphans(podIds: string[]): Promise<number> {
    let n = 0;
    for (const id of podIds) {
      try {
        await this.tearDown(id);
        n++;
      } catch (e) {
        logger.error("cannot tear down the network of a pod that no longer exists", { pod: id, error: errorMessage(e) });
      }
    }
    if (n > 0) logger.info("tore down networks of pods that no longer exist", { count: n });
    return n;
  }

  private async addList(t: Target, entry: CacheEntry): Promise<CniResult> {
    let prev: JsonObject | undefined;
    for (const p of t.network.plugins) {
      const out = await this.exec(t, p, "ADD", entry, prev);
      let result: CniResult;
      try {
        result = parseResult(JSON.parse(out));
      } catch (e) {
        throw internal(`${where(t, p, "ADD")}: the plugin printed an invalid result: ${errorMessage(e)}`);
      }
      prev = convertResult(result.raw, t.network.cniVersion);
    }
    return parseResult(prev);
  }

  /**
   * DEL after a failed ADD, through every plugin even when one fails (unlike a
   * normal DEL, which stops at the first error as the spec says), so a plugin
   * that fails both ways does not keep the others' IPs and rules. If any DEL
   * failed, the cache entry stays for the orphan sweep at the next start.
   */
  private async rollBack(t: Target, entry: CacheEntry): Promise<void> {
    let ok = true;
    for (const p of [...t.network.plugins].reverse()) {
      try {
        await this.exec(t, p, "DEL", entry, undefined);
      } catch (d) {
        ok = false;
        logger.error("CNI DEL after a failed ADD failed", { pod: t.podId, plugin: p.type, error: errorMessage(d) });
      }
    }
    if (ok) await this.cache.remove(t.podId);
  }

  private async delList(t: Target, entry: CacheEntry, result: JsonObject | undefined): Promise<void> {
    const prev = result && passesPrevResultOnDel(t.network) ? convertResult(result, t.network.cniVersion) : undefined;
    for (const p of [...t.network.plugins].reverse()) await this.exec(t, p, "DEL", entry, prev);
  }

  private async exec(t: Target, p: PluginConfig, command: CniCommand, entry: CacheEntry, prev: JsonObject | undefined): Promise<string> {
    const path = await findPlugin(p.type, this.opts.binDirs);
    if (!path) throw failedPrecondition(`${where(t, p, command)}: plugin "${p.type}" is in none of ${this.opts.binDirs.join(", ")}`);
    const caps: CapabilityArgs = entry.capabilityArgs;
    const env = pluginEnv(childEnv(), { command, containerId: t.podId, netns: entry.netns, ifName: entry.ifName, args: entry.cniArgs, binDirs: this.opts.binDirs });
    logger.debug("running CNI plugin", { pod: t.podId, network: t.network.name, plugin: p.type, command });
    try {
      return await runPlugin({ path, env, stdin: pluginStdin(t.network, p, caps, prev), timeoutMs: this.timeoutMs });
    } catch (e) {
      if (!(e instanceof PluginFailure)) throw e;
      const what = e.pluginError ? describePluginError(e.pluginError) : e.message;
      const msg = `${where(t, p, command)}: ${what}`;
      throw e.timedOut ? deadlineExceeded(msg, e) : internal(msg, e);
    }
  }

  private async currentConfigEntry(podId: string): Promise<CacheEntry | undefined> {
    const s = await this.dir.current();
    if (s.kind !== "ready") return undefined;
    return {
      kind: "crib-cni-cache", version: 1, podId, ifName: IFNAME, netns: "", file: s.file, network: networkToObject(s.network),
      cniArgs: [["IgnoreUnknown", "1"], ["K8S_POD_INFRA_CONTAINER_ID", podId]], capabilityArgs: { portMappings: [] }, result: null,
    };
  }

  /** One CNI operation per pod at a time. */
  private locked<T>(podId: string, fn: () => Promise<T>): Promise<T> {
    const prior = this.locks.get(podId) ?? Promise.resolve();
    const next = prior.catch(() => {}).then(fn);
    const tail = next.catch(() => {});
    this.locks.set(podId, tail);
    void tail.then(() => {
      if (this.locks.get(podId) === tail) this.locks.delete(podId);
    });
    return next;
  }
}

function where(t: Target, p: PluginConfig, command: CniCommand): string {
  return `CNI ${command} of pod ${t.pod} failed in plugin "${p.type}" of network "${t.network.name}" (${t.file})`;
}

function podName(config: PodSandboxConfig, podId: string): string {
  const md = config.metadata;
  return md ? `${md.namespace}/${md.name} (${podId.slice(0, 12)})` : podId.slice(0, 12);
}

function podNameFromArgs(args: [string, string][], podId: string): string {
  const get = (k: string) => args.find(([key]) => key === k)?.[1];
  const ns = get("K8S_POD_NAMESPACE");
  const name = get("K8S_POD_NAME");
  return ns && name ? `${ns}/${name} (${podId.slice(0, 12)})` : podId.slice(0, 12);
}

let nsfsDev: number | undefined;

/** Whether `path` is a (pinned) network namespace, not a stale file left after unmount. */
export function isNetns(path: string): boolean {
  if (!path) return false;
  try {
    nsfsDev ??= statSync("/proc/self/ns/net").dev;
    return statSync(path).dev === nsfsDev;
  } catch {
    return false;
  }
}
