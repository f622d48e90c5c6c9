// Registry authentication (the distribution spec's token flow and HTTP Basic).
// Anonymous first; on a 401 the WWW-Authenticate challenge says what to do:
//   Bearer realm=...,service=...  -> GET realm?service&scope (Basic credentials if we
//                                    have them; OAuth2 refresh-token POST for an
//                                    identity token), cached per host+scope until expiry
//   Basic realm=...               -> send the username and password
// Credentials and tokens are never logged and never sent to another origin
// over plain HTTP.
import type { RegistryAuth } from "../../config/config.ts";
import { errorMessage, invalidArgument, permissionDenied, registryUnavailable } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import { digestOf } from "../digest.ts";
import { isLoopbackHost, type Endpoint } from "./hosts.ts";
import { NetworkError, readBody, type HttpTransport } from "./transport.ts";

const logger = log.with({ component: "registry-auth" });

/** Credentials for one pull, as the CRI's AuthConfig carries them. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64 of "username:password". */
  auth?: string;
  serverAddress?: string;
  /** An OAuth2 refresh token, exchanged at the token server. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
}

/** Normalise an AuthConfig (or a config-file RegistryAuth): decode `auth`, drop empty fields. Undefined when empty. */
export function toCredentials(a: AuthConfig | RegistryAuth | undefined): Credentials | undefined {
  if (!a) return undefined;
  const c: Credentials = {};
  if (a.username) c.username = a.username;
  if (a.password) c.password = a.password;
  if (!c.username && a.auth) {
    let decoded: string;
    try {
      decoded = Buffer.from(a.auth, "base64").toString("utf8");
    } catch {
      decoded = "";
    }
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw invalidArgument(`registry auth: the "auth" field is not base64 of "username:password"`);
    c.username = decoded.slice(0, colon);
    c.password = decoded.slice(colon + 1);
  }
  if (a.identityToken) c.identityToken = a.identityToken;
  if ("registryToken" in a && a.registryToken) c.registryToken = a.registryToken;
  return Object.keys(c).length > 0 ? c : undefined;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse a WWW-Authenticate value (several headers arrive joined by ", ") into challenges (scheme lowercased). */
export function parseChallenges(header: string | undefined): Challenge[] {
  if (header === undefined) return [];
  const out: Challenge[] = [];
  const h = header;
  let i = 0;
  let current: Challenge | undefined;
  const skipSpace = () => {
    while (i < h.length && (h[i] === " " || h[i] === "\t" || h[i] === ",")) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < h.length && !/[\s,=]/.test(h[i]!)) i++;
    return h.slice(start, i);
  };
  while (i < h.length) {
    skipSpace();
    if (i >= h.length) break;
    const token = readToken();
    let j = i;
    while (j < h.length && (h[j] === " " || h[j] === "\t")) j++;
    if (h[j] === "=" && current) {
      i = j + 1;
      while (i < h.length && (h[i] === " " || h[i] === "\t")) i++;
      let value = "";
      if (h[i] === '"') {
        i++;
        while (i < h.length && h[i] !== '"') {
          if (h[i] === "\\" && i + 1 < h.length) i++;
          value += h[i];
          i++;
        }
        i++;
      } else {
        const start = i;
        while (i < h.length && h[i] !== ",") i++;
        value = h.slice(start, i).trim();
      }
      current.params[token.toLowerCase()] = value;
    } else if (token !== "") {
      current = { scheme: token.toLowerCase(), params: {} };
      out.push(current);
    } else {
      i++;
    }
  }
  return out;
}

/** The pull scope of a repository. */
export function pullScope(path: string): string {
  return `repository:${path}:pull`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_TOKEN_TTL_S = 60;

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ""}:${c.password ?? ""}`).toString("base64")}`;
}

/** Authorization headers for registry endpoints, with the per-host challenge and token caches. */
export class Authorizer {
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private tokenFetches = 0;

  constructor(
    private readonly transport: HttpTransport,
    /** Milliseconds on a monotonic clock: token lifetimes must not follow wall-clock jumps (boards without an RTC). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** How many tokens were fetched from token servers (for tests and metrics). */
  get tokenRequests(): number {
    return this.tokenFetches;
  }

  /** The Authorization header for a request, or undefined to go anonymous (no challenge seen yet). */
  async header(ep: Endpoint, scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenges.get(ep.base);
    if (!ch) return undefined;
    return this.answer(ep, ch, scope, creds, signal);
  }

  /**
   * After a 401: remember the challenge, forget the cached token, and return a
   * fresh header to retry with, or undefined when retrying cannot help.
   */
  async onUnauthorized(
    ep: Endpoint,
    scope: string,
    creds: Credentials | undefined,
    wwwAuthenticate: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const all = parseChallenges(wwwAuthenticate);
    const ch = all.find((c) => c.scheme === "bearer") ?? all.find((c) => c.scheme === "basic");
    if (!ch) return undefined;
    this.challenges.set(ep.base, ch);
    if (ch.scheme === "bearer") this.tokens.delete(this.tokenKey(ep, ch, scope, creds));
    return this.answer(ep, ch, scope, creds, signal);
  }

  private async answer(ep: Endpoint, ch: Challenge, scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<string | undefined> {
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    if (ch.scheme === "basic") return creds?.username !== undefined ? basic(creds) : undefined;
    if (ch.scheme !== "bearer") return undefined;
    const key = this.tokenKey(ep, ch, scope, creds);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    const fresh = await this.fetchToken(ep, ch, scope, creds, signal);
    this.tokens.set(key, fresh);
    return `Bearer ${fresh.token}`;
  }

  private tokenKey(ep: Endpoint, ch: Challenge, scope: string, creds: Credentials | undefined): string {
    // The credentials enter the key only as a hash, so tokens of different users never mix.
    const who = creds ? digestOf(JSON.stringify([creds.username, creds.password, creds.identityToken])).slice(7, 23) : "anonymous";
    return [ep.base, ch.params.realm ?? "", ch.params.service ?? "", scope, who].join("|");
  }

  private async fetchToken(ep: Endpoint, ch: Challenge, scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<CachedToken> {
    const realmText = ch.params.realm;
    if (!realmText) throw registryUnavailable(`registry ${ep.host} asked for a bearer token but named no token server (realm)`);
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw registryUnavailable(`registry ${ep.host} named an invalid token server "${realmText.slice(0, 200)}"`);
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") {
      throw registryUnavailable(`registry ${ep.host} named a token server with unsupported scheme ${realm.protocol}`);
    }
    const hasSecret = creds?.username !== undefined || creds?.identityToken !== undefined;
    if (hasSecret && realm.protocol === "http:" && !ep.plainHttp && !isLoopbackHost(realm.host)) {
      throw permissionDenied(`unauthorized: registry ${ep.host} sent its token server as plain http://${realm.host}; crib will not send credentials there`);
    }
    const service = ch.params.service;
    const tls = realm.host === ep.host ? ep.config?.tls : undefined;
    const what = `token for ${scope} from ${realm.host}`;
    this.tokenFetches++;
    let res;
    try {
      if (creds?.identityToken) {
        const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.identityToken, client_id: "crib", scope });
        if (service) form.set("service", service);
        res = await this.transport.send({
          method: "POST",
          url: realm,
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: form.toString(),
          signal,
          tls,
          what,
        });
      } else {
        const url = new URL(realm);
        if (service) url.searchParams.set("service", service);
        url.searchParams.set("scope", scope);
        const headers: Record<string, string> = {};
        if (creds?.username !== undefined) {
          url.searchParams.set("account", creds.username);
          headers.authorization = basic(creds);
        }
        res = await this.transport.send({ method: "GET", url, headers, signal, tls, what });
      }
    } catch (e) {
      if (e instanceof NetworkError) throw registryUnavailable(`cannot reach token server ${realm.host} for registry ${ep.host}: ${e.message}`, e);
      throw e;
    }
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => {});
      throw permissionDenied(
        `unauthorized: token server ${realm.host} refused ${hasSecret ? "the credentials" : "anonymous access"} for ${scope} on ${ep.host} (HTTP ${res.status})`,
      );
    }
    if (res.status !== 200) {
      await res.body.dump().catch(() => {});
      throw registryUnavailable(`token server ${realm.host} answered HTTP ${res.status} for ${scope} on ${ep.host}`);
    }
    const body = await readBody(res, MAX_TOKEN_RESPONSE_BYTES, `token response from ${realm.host}`);
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder().decode(body));
    } catch (e) {
      throw registryUnavailable(`token server ${realm.host} sent a response that is not JSON: ${errorMessage(e)}`);
    }
    const o = (typeof doc === "object" && doc !== null ? doc : {}) as Record<string, unknown>;
    const token = typeof o.token === "string" && o.token !== "" ? o.token : typeof o.access_token === "string" ? o.access_token : "";
    if (token === "") throw registryUnavailable(`token server ${realm.host} sent no token for ${scope}`);
    const ttl = typeof o.expires_in === "number" && o.expires_in > 0 ? o.expires_in : DEFAULT_TOKEN_TTL_S;
    // Renew a little early so a token does not expire between check and use.
    const margin = Math.min(10, ttl / 2);
    logger.debug("fetched registry token", { registry: ep.host, tokenServer: realm.host, scope, expiresIn: ttl });
    return { token, expiresAt: this.now() + (ttl - margin) * 1000 };
  }
}
