// CNI network configuration: lists (.conflist) and single configs (.conf,
// .json) wrapped into a one-plugin list, validated enough that crib can run
// them and name what is wrong. Pure: no files, no processes.

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject { [key: string]: Json }

/** Spec versions whose result shape crib reads (0.3.x and 0.4.0 share one; 1.x drops ips[].version). */
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

/** File names the kubelet convention treats as network configs. */
export const CONFIG_FILE = /\.(conf|conflist|json)$/;

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const PLUGIN_TYPE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface PluginConfig {
  /** The plugin binary's name. */
  type: string;
  /** The IPAM plugin it delegates to, if any (it must be present too). */
  ipamType?: string;
  /** Capabilities the plugin declares true (portMappings, bandwidth, dns...). */
  capabilities: string[];
  /** The plugin's config as written, without name/cniVersion (filled from the list). */
  raw: JsonObject;
}

export interface NetworkList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  plugins: PluginConfig[];
}

export class CniConfigError extends Error {
  override readonly name = "CniConfigError";
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Compare two "x.y.z" versions: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** CHECK exists from 0.4.0 on, and a list may opt out with disableCheck. */
export function supportsCheck(list: NetworkList): boolean {
  return compareVersions(list.cniVersion, "0.4.0") >= 0 && !list.disableCheck;
}

/** DEL and CHECK carry the ADD result as prevResult from 0.4.0 on. */
export function passesPrevResultOnDel(list: NetworkList): boolean {
  return compareVersions(list.cniVersion, "0.4.0") >= 0;
}

/** Parse a config file's text; `.conflist` must be a list, others may be either. */
export function parseNetworkConfig(text: string, file: string): NetworkList {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new CniConfigError(`not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(data)) throw new CniConfigError("expected a JSON object");
  if (file.endsWith(".conflist") && !Array.isArray(data.plugins)) throw new CniConfigError(`a .conflist needs a "plugins" list`);
  return networkFromObject(data);
}

/** A list object, or a single plugin config (with a "type") wrapped into a list. */
export function networkFromObject(data: JsonObject): NetworkList {
  const isList = Array.isArray(data.plugins);
  if (!isList && typeof data.type !== "string") throw new CniConfigError(`neither a list ("plugins") nor a single plugin config ("type")`);
  const name = data.name;
  if (typeof name !== "string" || !NETWORK_NAME.test(name)) {
    throw new CniConfigError(`"name" must start with a letter or digit, followed by letters, digits, "_", "." or "-" (got ${JSON.stringify(name ?? null)})`);
  }
  const cniVersion = data.cniVersion;
  if (typeof cniVersion !== "string") throw new CniConfigError(`network "${name}": "cniVersion" is missing`);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniConfigError(`network "${name}": cniVersion ${cniVersion} is not supported (crib runs ${SUPPORTED_VERSIONS.join(", ")})`);
  }
  if (data.disableCheck !== undefined && typeof data.disableCheck !== "boolean" && data.disableCheck !== "true" && data.disableCheck !== "false") {
    throw new CniConfigError(`network "${name}": "disableCheck" must be true or false`);
  }
  const disableCheck = data.disableCheck === true || data.disableCheck === "true";
  const rawPlugins = isList ? (data.plugins as Json[]) : [data];
  if (rawPlugins.length === 0) throw new CniConfigError(`network "${name}": "plugins" is empty`);
  const plugins = rawPlugins.map((p, i) => pluginFromObject(p, `network "${name}" plugin ${i}`));
  return { name, cniVersion, disableCheck, plugins };
}

function pluginFromObject(p: Json, where: string): PluginConfig {
  if (!isObject(p)) throw new CniConfigError(`${where}: expected an object`);
  const type = p.type;
  if (typeof type !== "string" || !PLUGIN_TYPE.test(type)) throw new CniConfigError(`${where}: "type" must be a plugin binary name (got ${JSON.stringify(type ?? null)})`);
  let ipamType: string | undefined;
  if (p.ipam !== undefined) {
    if (!isObject(p.ipam)) throw new CniConfigError(`${where} (${type}): "ipam" must be an object`);
    const t = p.ipam.type;
    if (t !== undefined) {
      if (typeof t !== "string" || !PLUGIN_TYPE.test(t)) throw new CniConfigError(`${where} (${type}): "ipam.type" must be a plugin binary name`);
      ipamType = t;
    }
  }
  const capabilities: string[] = [];
  if (p.capabilities !== undefined) {
    if (!isObject(p.capabilities)) throw new CniConfigError(`${where} (${type}): "capabilities" must be an object`);
    for (const [k, v] of Object.entries(p.capabilities)) if (v === true) capabilities.push(k);
  }
  const raw: JsonObject = { ...p };
  delete raw.name;
  delete raw.cniVersion;
  return { type, ipamType, capabilities, raw };
}

/** The list as JSON again (for the cache, so DEL runs the config ADD ran with). */
export function networkToObject(list: NetworkList): JsonObject {
  return { cniVersion: list.cniVersion, name: list.name, disableCheck: list.disableCheck, plugins: list.plugins.map((p) => p.raw) };
}
