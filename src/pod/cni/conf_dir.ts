// The network crib uses: the first parsable config file by name in
// cni.confDir (the kubelet convention), usable once its plugins are in
// cni.binDirs. Looked at on demand (Status, RunPodSandbox): a readdir and a
// stat per file tell whether anything changed, so an idle daemon spends
// nothing and a new or edited file counts without a restart.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, errorMessage } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import { CONFIG_FILE, parseNetworkConfig, type NetworkList } from "./config.ts";
import { findPlugin } from "./exec.ts";

const logger = log.with({ component: "cni" });

export type NetworkState =
  /** No config file at all: pods get loopback only (and NetworkReady is false). */
  | { kind: "none"; message: string }
  /** Config files exist but none can be used yet. */
  | { kind: "unusable"; message: string }
  | { kind: "ready"; network: NetworkList; file: string };

export interface CniDirs { confDir: string; binDirs: string[] }

export class ConfDir {
  private signature = "";
  private state: NetworkState | undefined;
  private inFlight: Promise<NetworkState> | undefined;
  private announced = "";

  constructor(readonly dirs: CniDirs) {}

  /** The current network, re-read only when the dir's files changed (or it was not usable). */
  current(): Promise<NetworkState> {
    this.inFlight ??= this.refresh().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async refresh(): Promise<NetworkState> {
    const files = await this.configFiles();
    const sig = files.map((f) => `${f.name}:${f.mtimeMs}:${f.size}`).join("|");
    // Not usable yet: look again each time (plugins may have been installed since).
    if (sig === this.signature && this.state?.kind === "ready") return this.state;
    const state = await this.evaluate(files.map((f) => f.name));
    this.signature = sig;
    this.state = state;
    this.announce(state);
    return state;
  }

  private async configFiles(): Promise<{ name: string; mtimeMs: number; size: number }[]> {
    let names: string[];
    try {
      names = await readdir(this.dirs.confDir);
    } catch (e) {
      if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return [];
      throw e;
    }
    // Byte order, as Go's sort.Strings (the kubelet's and libcni's).
    names = names.filter((n) => CONFIG_FILE.test(n) && !n.startsWith(".")).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const out: { name: string; mtimeMs: number; size: number }[] = [];
    for (const name of names) {
      try {
        const st = await stat(join(this.dirs.confDir, name));
        if (st.isFile()) out.push({ name, mtimeMs: st.mtimeMs, size: st.size });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  private async evaluate(names: string[]): Promise<NetworkState> {
    const { confDir, binDirs } = this.dirs;
    if (names.length === 0) return { kind: "none", message: `no CNI network config in ${confDir} (files ending .conf, .conflist or .json)` };
    const problems: string[] = [];
    for (const name of names) {
      const file = join(confDir, name);
      let network: NetworkList;
      try {
        network = parseNetworkConfig(await readFile(file, "utf8"), file);
      } catch (e) {
        problems.push(`${file}: ${errorMessage(e)}`);
        continue;
      }
      // The first parsable file is the network; a later one never stands in for it.
      for (const p of network.plugins) {
        for (const type of [p.type, p.ipamType]) {
          if (type && !(await findPlugin(type, binDirs))) {
            return { kind: "unusable", message: `CNI network "${network.name}" (${file}) needs plugin "${type}", which is in none of ${binDirs.join(", ")}` };
          }
        }
      }
      return { kind: "ready", network, file };
    }
    return { kind: "unusable", message: `no usable CNI network config in ${confDir}: ${problems.join("; ")}` };
  }

  private announce(state: NetworkState): void {
    const key = state.kind === "ready" ? `ready:${state.network.name}:${state.file}` : `${state.kind}:${state.message}`;
    if (key === this.announced) return;
    this.announced = key;
    if (state.kind === "ready") logger.info("using CNI network", { network: state.network.name, file: state.file, cniVersion: state.network.cniVersion, plugins: state.network.plugins.map((p) => p.type) });
    else logger.warn("no usable CNI network", { reason: state.message });
  }
}

// One view per (confDir, binDirs): the daemon's readiness and its CniManager share it.
const views = new Map<string, ConfDir>();

export function confDirFor(dirs: CniDirs): ConfDir {
  const key = JSON.stringify([dirs.confDir, dirs.binDirs]);
  let v = views.get(key);
  if (!v) {
    v = new ConfDir({ confDir: dirs.confDir, binDirs: [...dirs.binDirs] });
    views.set(key, v);
  }
  return v;
}
