// Which endpoints serve a registry: its mirrors from the config (tried in
// order), then the registry itself.
//
// Scheme rule (as containerd and docker do): a registry host is spoken to over
// HTTPS, except
//   - a mirror endpoint written as "http://..." in the config, and
//   - a registry on a loopback host (localhost, 127.x.x.x, ::1), spoken to
//     over plain HTTP.
// `tls.insecureSkipVerify` never downgrades to HTTP: it keeps HTTPS and skips
// certificate verification.
import type { Config, RegistryHostConfig } from "../../config/config.ts";
import { invalidArgument } from "../../errors.ts";

export type RegistriesConfig = Config["registries"];

export interface Endpoint {
  /** The image's registry, as in the reference ("docker.io"). */
  registry: string;
  /** The host[:port] spoken to ("registry-1.docker.io", "mirror.example:5000"). */
  host: string;
  /** Base URL of the distribution API, ending in "/v2" (no trailing slash). */
  base: string;
  mirror: boolean;
  plainHttp: boolean;
  /** Auth and TLS settings from `registries.configs` for this host. */
  config?: RegistryHostConfig;
}

/** docker.io's API lives on another host. */
const DOCKER_HUB_API_HOST = "registry-1.docker.io";

/** True for localhost, 127.0.0.0/8 and ::1, with or without a port. */
export function isLoopbackHost(host: string): boolean {
  let name = host;
  if (name.startsWith("[")) name = name.slice(1, name.indexOf("]"));
  else if (name.includes(":") && name.indexOf(":") === name.lastIndexOf(":")) name = name.slice(0, name.indexOf(":"));
  name = name.toLowerCase();
  return name === "localhost" || name === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

function mirrorEndpoint(registry: string, text: string, cfg: RegistriesConfig): Endpoint {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidArgument(`registries.mirrors["${registry}"]: endpoint "${text}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalidArgument(`registries.mirrors["${registry}"]: endpoint "${text}" must be http:// or https://`);
  }
  let path = url.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/v2")) path += "/v2";
  const ep: Endpoint = {
    registry,
    host: url.host,
    base: `${url.protocol}//${url.host}${path}`,
    mirror: true,
    plainHttp: url.protocol === "http:",
  };
  const hostConfig = cfg.configs[url.host];
  if (hostConfig) ep.config = hostConfig;
  return ep;
}

/** The endpoints to try for a registry, in order: mirrors (or the "*" mirrors), then upstream. */
export function endpointsFor(registry: string, cfg: RegistriesConfig): Endpoint[] {
  const mirrors = cfg.mirrors[registry]?.endpoint ?? cfg.mirrors["*"]?.endpoint ?? [];
  const out: Endpoint[] = mirrors.map((m) => mirrorEndpoint(registry, m, cfg));
  const host = registry === "docker.io" ? DOCKER_HUB_API_HOST : registry;
  const plainHttp = isLoopbackHost(host);
  const upstream: Endpoint = {
    registry,
    host,
    base: `${plainHttp ? "http" : "https"}://${host}/v2`,
    mirror: false,
    plainHttp,
  };
  const hostConfig = cfg.configs[registry] ?? cfg.configs[host];
  if (hostConfig) upstream.config = hostConfig;
  // A "mirror" that is the registry itself is just the upstream, listed once.
  const deduped = out.filter((m) => m.base !== upstream.base);
  deduped.push(upstream);
  return deduped;
}
