// The crib configuration: its shape, embedded defaults and loading.
// The YAML shape follows ARCHITECTURE.md (registries as in k3s's registries.yaml).
import { readFileSync } from "node:fs";
import { isNode, LineCounter, parseDocument, type Document } from "yaml";
import { CribError, errnoCode } from "../errors.ts";
import { LOG_LEVELS, type LogLevel } from "../log/logger.ts";
import { checkPolicySection, DEFAULT_POLICY, type PolicyConfig } from "./policy_section.ts";
import { bool, custom, duration, int, list, map, obj, oneOf, SchemaError, str, validate, type Segment, type Spec } from "./schema.ts";

export interface RuntimeHandler { path: string; root?: string }
export interface RegistryAuth { username?: string; password?: string; auth?: string; identityToken?: string }
export interface RegistryTLS { caFile?: string; certFile?: string; keyFile?: string; insecureSkipVerify?: boolean }
export interface RegistryHostConfig { auth?: RegistryAuth; tls?: RegistryTLS }

export interface Config {
  socket: string;
  /** Group of the CRI socket (name or gid; "" = root's), for a non-root kubelet or agent. */
  socketGroup: string;
  root: string;
  state: string;
  log: { level: LogLevel };
  runtime: { default: string; handlers: Record<string, RuntimeHandler>; cgroupDriver: "cgroupfs" | "systemd" };
  cni: { confDir: string; binDirs: string[] };
  /** CDI spec directories, lowest priority first (a later one overrides a device of an earlier one). */
  cdi: { specDirs: string[] };
  streaming: { address: string; port: number; tokenTTL: string; idleTimeout: string };
  metrics: { address: string };
  pull: {
    progressTimeout: string;
    minBytesPerSecond: number;
    maxConcurrentDownloads: number;
    /** Flush each unpacked layer to the disk before recording it (survives a power cut). */
    syncFs: boolean;
    platform: { os: string; architecture: string; variant: string };
  };
  image: { pauseImage: string; pinned: string[] };
  registries: { mirrors: Record<string, { endpoint: string[] }>; configs: Record<string, RegistryHostConfig> };
  /** Image signature policy (shape: policy_section.ts; meaning: src/image/trust/). */
  policy: PolicyConfig;
}

const ABS_PATH = /^\/.*/;
const absPath = () => str(ABS_PATH, "must be an absolute path");

export const CONFIG_SPEC: Spec = obj({
  socket: absPath(),
  socketGroup: str(/^$|^\d+$|^[a-z_][a-z0-9_.-]*\$?$/, "a group name or a numeric gid"),
  root: absPath(),
  state: absPath(),
  log: obj({ level: oneOf(...LOG_LEVELS) }),
  runtime: obj({
    default: str(/^[a-z0-9][a-z0-9.-]*$/, "a RuntimeClass handler name"),
    handlers: map(obj({ path: str(), root: absPath() })),
    cgroupDriver: oneOf("cgroupfs", "systemd"),
  }),
  cni: obj({ confDir: absPath(), binDirs: list(absPath()) }),
  cdi: obj({ specDirs: list(absPath()) }),
  streaming: obj({ address: str(), port: int(0, 65535), tokenTTL: duration, idleTimeout: duration }),
  metrics: obj({ address: str(/^$|^[^:]*:\d+$/, 'host:port, or "" to turn metrics off') }),
  pull: obj({
    progressTimeout: duration,
    minBytesPerSecond: int(0),
    maxConcurrentDownloads: int(1, 64),
    syncFs: bool,
    platform: obj({ os: str(), architecture: str(), variant: str() }),
  }),
  image: obj({ pauseImage: str(), pinned: list(str()) }),
  registries: obj({
    mirrors: map(obj({ endpoint: list(str(/^https?:\/\/[^\s]+$/, "an http:// or https:// URL")) })),
    configs: map(obj({
      auth: obj({ username: str(), password: str(), auth: str(), identityToken: str() }),
      tls: obj({ caFile: absPath(), certFile: absPath(), keyFile: absPath(), insecureSkipVerify: bool }),
    })),
  }),
  policy: custom(checkPolicySection),
});

/** Node architecture names to OCI ones. */
function ociArch(): { architecture: string; variant: string } {
  switch (process.arch) {
    case "x64": return { architecture: "amd64", variant: "" };
    case "arm64": return { architecture: "arm64", variant: "v8" };
    case "arm": return { architecture: "arm", variant: "v7" };
    case "ia32": return { architecture: "386", variant: "" };
    default: return { architecture: process.arch, variant: "" };
  }
}

export const DEFAULT_CONFIG_PATH = "/etc/crib/crib.yaml";

export function defaultConfig(): Config {
  return {
    socket: "/run/crib/crib.sock",
    socketGroup: "",
    root: "/var/lib/crib",
    state: "/run/crib",
    log: { level: "info" },
    runtime: {
      default: "runc",
      handlers: { runc: { path: "runc" }, crun: { path: "crun" } },
      cgroupDriver: "cgroupfs",
    },
    cni: { confDir: "/etc/cni/net.d", binDirs: ["/opt/cni/bin", "/usr/lib/cni"] },
    cdi: { specDirs: ["/etc/cdi", "/var/run/cdi"] },
    streaming: { address: "127.0.0.1", port: 0, tokenTTL: "1m", idleTimeout: "4h" },
    metrics: { address: "" },
    pull: {
      progressTimeout: "1m",
      minBytesPerSecond: 1024,
      maxConcurrentDownloads: 3,
      syncFs: true,
      platform: { os: "linux", ...ociArch() },
    },
    image: { pauseImage: "registry.k8s.io/pause:3.10", pinned: [] },
    registries: { mirrors: {}, configs: {} },
    policy: structuredClone(DEFAULT_POLICY),
  };
}

/** The config with registry credentials replaced, for anything sent over the socket or logged. */
export function redactedConfig(config: Config): Config {
  const configs: Record<string, RegistryHostConfig> = {};
  for (const [host, c] of Object.entries(config.registries.configs)) {
    const auth = c.auth && Object.fromEntries(Object.entries(c.auth).map(([k, v]) => [k, k === "username" ? v : v ? "<redacted>" : v]));
    configs[host] = { ...c, ...(auth ? { auth } : {}) };
  }
  return { ...config, registries: { ...config.registries, configs } };
}

/** A config file that cannot be used; the message names the file and the key. */
export class ConfigError extends CribError {
  constructor(message: string) {
    super("invalid_argument", message);
  }
}

/**
 * Parse config text (YAML) over the defaults. `source` names the file in errors.
 * `check` runs on the result (the daemon reads the policy's key files there); a
 * SchemaError from either is reported as "<file>: <key.path>: <problem> (line N)".
 */
export function parseConfig(text: string, source: string, check?: (c: Config) => void): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`${source}: invalid YAML: ${e.message.split("\n")[0]}`);
  }
  const data: unknown = doc.toJS();
  try {
    const config = data === null || data === undefined ? defaultConfig() : (validate(CONFIG_SPEC, data, defaultConfig(), "") as Config);
    check?.(config);
    return config;
  } catch (e) {
    if (e instanceof SchemaError) {
      const line = lineOf(doc, lineCounter, e.at);
      throw new ConfigError(`${source}: ${e.message}${line ? ` (line ${line})` : ""}`);
    }
    throw e;
  }
}

/** The line of the value at `at` (or of its nearest parent that is in the file). */
function lineOf(doc: Document, lines: LineCounter, at: Segment[]): number | undefined {
  for (let n = at.length; n > 0; n--) {
    const node = doc.getIn(at.slice(0, n), true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/**
 * Load the config. With an explicit path the file must exist; the default path
 * may be absent (then the embedded defaults apply).
 */
export function loadConfig(path: string | undefined, check?: (c: Config) => void): { config: Config; source: string } {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (path === undefined && errnoCode(e) === "ENOENT") {
      const config = defaultConfig();
      check?.(config);
      return { config, source: "embedded defaults" };
    }
    throw new ConfigError(`${file}: cannot read config: ${(e as Error).message}`);
  }
  return { config: parseConfig(text, file, check), source: file };
}
