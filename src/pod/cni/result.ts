// CNI results (0.3.x/0.4.0 and 1.x shapes) and plugin errors. Pure.
import { isIP } from "node:net";
import { compareVersions, isObject, SUPPORTED_VERSIONS, type Json, type JsonObject } from "./config.ts";

export interface CniInterface { name: string; mac?: string; sandbox?: string }
export interface CniIp { address: string; gateway?: string; interface?: number }

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  /** The result as the plugin printed it (what the next plugin gets as prevResult). */
  raw: JsonObject;
}

export class CniResultError extends Error {
  override readonly name = "CniResultError";
}

/** Parse and check a result a plugin printed. */
export function parseResult(data: unknown): CniResult {
  if (!isObject(data)) throw new CniResultError("the result is not a JSON object");
  const v = data.cniVersion;
  if (typeof v !== "string") throw new CniResultError(`the result has no "cniVersion"`);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) throw new CniResultError(`result version ${v} is not one crib reads (${SUPPORTED_VERSIONS.join(", ")})`);
  const interfaces: CniInterface[] = [];
  for (const [i, x] of arrayField(data, "interfaces").entries()) {
    if (!isObject(x) || typeof x.name !== "string") throw new CniResultError(`interfaces[${i}] needs a "name"`);
    interfaces.push({ name: x.name, mac: optString(x.mac, `interfaces[${i}].mac`), sandbox: optString(x.sandbox, `interfaces[${i}].sandbox`) });
  }
  const ips: CniIp[] = [];
  for (const [i, x] of arrayField(data, "ips").entries()) {
    if (!isObject(x) || typeof x.address !== "string") throw new CniResultError(`ips[${i}] needs an "address"`);
    const [addr, prefix] = x.address.split("/");
    if (!addr || !isIP(addr) || prefix === undefined || !/^\d{1,3}$/.test(prefix)) throw new CniResultError(`ips[${i}].address ${JSON.stringify(x.address)} is not an address in CIDR form`);
    const gateway = optString(x.gateway, `ips[${i}].gateway`);
    if (gateway !== undefined && gateway !== "" && !isIP(gateway)) throw new CniResultError(`ips[${i}].gateway ${JSON.stringify(gateway)} is not an IP address`);
    let iface: number | undefined;
    if (x.interface !== undefined && x.interface !== null) {
      if (typeof x.interface !== "number" || !Number.isInteger(x.interface) || x.interface < 0 || x.interface >= interfaces.length) {
        throw new CniResultError(`ips[${i}].interface ${JSON.stringify(x.interface)} is not an index into interfaces`);
      }
      iface = x.interface;
    }
    ips.push({ address: x.address, gateway: gateway || undefined, interface: iface });
  }
  return { cniVersion: v, interfaces, ips, raw: data };
}

function arrayField(o: JsonObject, key: string): Json[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new CniResultError(`"${key}" must be a list`);
  return v;
}

function optString(v: Json | undefined, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new CniResultError(`${what} must be a string`);
  return v;
}

/**
 * The pod's IPs: those on the sandbox interface `ifName` (or with no interface
 * given), first IPv4 first (CRI's `ip`), the others after in result order.
 */
export function podIps(result: CniResult, ifName: string): string[] {
  const onPod = result.ips.filter((ip) => {
    if (ip.interface === undefined) return true;
    const itf = result.interfaces[ip.interface];
    return itf !== undefined && itf.name === ifName && !!itf.sandbox;
  });
  const addrs = [...new Set(onPod.map((ip) => ip.address.split("/")[0]!))];
  const v4 = addrs.findIndex((a) => isIP(a) === 4);
  if (v4 > 0) addrs.unshift(...addrs.splice(v4, 1));
  return addrs;
}

/** The result in the shape of another version: 0.3.x/0.4.0 carry ips[].version, 1.x does not. */
export function convertResult(raw: JsonObject, toVersion: string): JsonObject {
  const out: JsonObject = { ...raw, cniVersion: toVersion };
  const ips = raw.ips;
  if (!Array.isArray(ips)) return out;
  const legacy = compareVersions(toVersion, "1.0.0") < 0;
  out.ips = ips.map((ip) => {
    if (!isObject(ip)) return ip;
    const copy: JsonObject = { ...ip };
    if (legacy) {
      const addr = typeof ip.address === "string" ? ip.address.split("/")[0]! : "";
      copy.version = isIP(addr) === 6 ? "6" : "4";
    } else {
      delete copy.version;
    }
    return copy;
  });
  return out;
}

/** The error a plugin prints on stdout when it fails. */
export interface CniPluginError { code: number; msg: string; details?: string }

export function parsePluginError(stdout: string): CniPluginError | undefined {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (!isObject(data) || typeof data.code !== "number") return undefined;
  const msg = typeof data.msg === "string" ? data.msg : "";
  const details = typeof data.details === "string" && data.details !== "" ? data.details : undefined;
  return { code: data.code, msg, details };
}

/** Well-known error codes from the spec, to say what a bare code means. */
const WELL_KNOWN: Record<number, string> = {
  1: "incompatible CNI version",
  2: "unsupported field in network configuration",
  3: "container unknown or does not exist",
  4: "invalid necessary environment variables",
  5: "I/O failure",
  6: "failed to decode content",
  7: "invalid network config",
  11: "try again later",
};

export function describePluginError(e: CniPluginError): string {
  const text = [e.msg || WELL_KNOWN[e.code] || "plugin error", e.details].filter(Boolean).join(": ");
  return `${text} (code ${e.code})`;
}
