// What crib hands a CNI plugin: the environment (CNI_* variables, CNI_ARGS
// with the Kubernetes pod identity) and stdin (the plugin's config with the
// list's name and cniVersion, runtimeConfig for declared capabilities, and
// prevResult). Pure.
import { Protocol, type PodSandboxConfig } from "../../protocol/types.ts";
import { invalidArgument } from "../../errors.ts";
import type { JsonObject, NetworkList, PluginConfig } from "./config.ts";

export const IFNAME = "eth0";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

export interface PortMappingArg { hostPort: number; containerPort: number; protocol: string; hostIP?: string }
export interface BandwidthArg { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number }
export interface DnsArg { servers: string[]; searches: string[]; options: string[] }

/** Capability arguments, by the names of CNI's CONVENTIONS.md. */
export interface CapabilityArgs { portMappings: PortMappingArg[]; bandwidth?: BandwidthArg; dns?: DnsArg }

export const INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth";
export const EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth";

/** The kubelet sent burst as "no limit" beside an average rate; the plugin needs one. */
const UNLIMITED_BURST = 2147483647;
/** The kubelet's bounds for bandwidth annotations, in bits per second. */
const MIN_RATE = 1e3;
const MAX_RATE = 1e15;

const PROTOCOLS: Record<number, string> = { [Protocol.TCP]: "tcp", [Protocol.UDP]: "udp", [Protocol.SCTP]: "sctp" };

/** CNI_ARGS pairs: the pod's identity as the kubelet's runtimes pass it. */
export function cniArgs(podId: string, config: PodSandboxConfig): [string, string][] {
  const md = config.metadata;
  const pairs: [string, string][] = [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAMESPACE", md?.namespace ?? ""],
    ["K8S_POD_NAME", md?.name ?? ""],
    ["K8S_POD_INFRA_CONTAINER_ID", podId],
    ["K8S_POD_UID", md?.uid ?? ""],
  ];
  for (const [k, v] of pairs) {
    if (/[;=]/.test(v)) throw invalidArgument(`pod ${k} ${JSON.stringify(v)} contains ";" or "=", which CNI_ARGS cannot carry`);
  }
  return pairs;
}

export function formatCniArgs(pairs: [string, string][]): string {
  return pairs.map(([k, v]) => `${k}=${v}`).join(";");
}

/** Capability arguments from the pod config: hostPorts, bandwidth annotations, DNS. */
export function capabilityArgs(config: PodSandboxConfig): CapabilityArgs {
  const portMappings: PortMappingArg[] = [];
  for (const pm of config.port_mappings ?? []) {
    if (pm.host_port <= 0) continue; // only hostPorts are the runtime's business
    if (pm.host_port > 65535 || pm.container_port <= 0 || pm.container_port > 65535) {
      throw invalidArgument(`port mapping ${pm.host_port}->${pm.container_port}: ports must be within 1-65535`);
    }
    const protocol = PROTOCOLS[pm.protocol];
    if (!protocol) throw invalidArgument(`port mapping ${pm.host_port}->${pm.container_port}: unknown protocol ${pm.protocol}`);
    portMappings.push({ hostPort: pm.host_port, containerPort: pm.container_port, protocol, ...(pm.host_ip ? { hostIP: pm.host_ip } : {}) });
  }
  const args: CapabilityArgs = { portMappings };
  const ann = config.annotations ?? {};
  const ingress = ann[INGRESS_ANNOTATION];
  const egress = ann[EGRESS_ANNOTATION];
  if (ingress !== undefined || egress !== undefined) {
    const bw: BandwidthArg = {};
    if (ingress !== undefined) {
      bw.ingressRate = bandwidthBits(ingress, INGRESS_ANNOTATION);
      bw.ingressBurst = UNLIMITED_BURST;
    }
    if (egress !== undefined) {
      bw.egressRate = bandwidthBits(egress, EGRESS_ANNOTATION);
      bw.egressBurst = UNLIMITED_BURST;
    }
    args.bandwidth = bw;
  }
  if (config.dns_config) {
    args.dns = { servers: config.dns_config.servers, searches: config.dns_config.searches, options: config.dns_config.options };
  }
  return args;
}

const SUFFIX: Record<string, number> = {
  "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes quantity ("10M", "1Gi", "500k", "1e6") as a whole number, rounded up. */
export function parseQuantity(q: string): number | undefined {
  const m = /^\+?(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/.exec(q.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  const mult = m[3] !== undefined ? 10 ** Number(m[3]) : SUFFIX[m[2] ?? ""]!;
  const v = base * mult;
  return Number.isFinite(v) ? Math.ceil(v) : undefined;
}

/** A bandwidth annotation in bits per second, within the kubelet's bounds (1k..1P). */
export function bandwidthBits(value: string, annotation: string): number {
  const bits = parseQuantity(value);
  if (bits === undefined) throw invalidArgument(`annotation ${annotation}: ${JSON.stringify(value)} is not a quantity (e.g. "10M" bits per second)`);
  if (bits < MIN_RATE || bits > MAX_RATE) throw invalidArgument(`annotation ${annotation}: ${value} is outside 1k..1P bits per second`);
  return bits;
}

/** The runtimeConfig for one plugin: only the capabilities it declares. */
export function runtimeConfigFor(plugin: PluginConfig, caps: CapabilityArgs): JsonObject | undefined {
  const out: JsonObject = {};
  for (const c of plugin.capabilities) {
    if (c === "portMappings") out.portMappings = caps.portMappings.map((p) => ({ ...p }));
    else if (c === "bandwidth" && caps.bandwidth) out.bandwidth = { ...caps.bandwidth };
    else if (c === "dns" && caps.dns) out.dns = { servers: [...caps.dns.servers], searches: [...caps.dns.searches], options: [...caps.dns.options] };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The JSON a plugin reads on stdin. */
export function pluginStdin(list: NetworkList, plugin: PluginConfig, caps: CapabilityArgs, prevResult?: JsonObject): string {
  const conf: JsonObject = { ...plugin.raw, cniVersion: list.cniVersion, name: list.name };
  const rc = runtimeConfigFor(plugin, caps);
  if (rc) conf.runtimeConfig = { ...(typeof plugin.raw.runtimeConfig === "object" && plugin.raw.runtimeConfig && !Array.isArray(plugin.raw.runtimeConfig) ? plugin.raw.runtimeConfig : {}), ...rc };
  if (prevResult) conf.prevResult = prevResult;
  return JSON.stringify(conf);
}

export interface PluginInvocation {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifName: string;
  args: [string, string][];
  binDirs: string[];
}

/** The plugin's environment: ours (PATH for iptables etc.) without stray CNI_* vars, plus the CNI ones. */
export function pluginEnv(base: Record<string, string | undefined>, inv: PluginInvocation): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith("CNI_")) env[k] = v;
  env.CNI_COMMAND = inv.command;
  env.CNI_CONTAINERID = inv.containerId;
  env.CNI_NETNS = inv.netns;
  env.CNI_IFNAME = inv.ifName;
  env.CNI_ARGS = formatCniArgs(inv.args);
  env.CNI_PATH = inv.binDirs.join(":");
  return env;
}
