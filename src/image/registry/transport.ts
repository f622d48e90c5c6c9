// HTTP for the registry client, over undici: one connection pool per TLS
// setting, bounded redirects, and retries with backoff for what a retry can
// fix (5xx, 429, connections reset or timed out). Never logs headers: they
// carry credentials and tokens.
import { readFileSync } from "node:fs";
// The package's own entry, not the bare "undici": Bun answers a bare "undici"
// import with a built-in stand-in over fetch whose Agent takes no TLS options
// and whose bodies have no dump(). The real package runs under Bun and in the
// compiled binary.
import type { Agent } from "undici/index.js";
import type { RegistryTLS } from "../../config/config.ts";
import { CribError, errnoCode, errorMessage, failedPrecondition, registryUnavailable, resourceExhausted } from "../../errors.ts";
import { log } from "../../log/logger.ts";

const logger = log.with({ component: "registry" });

export const MAX_REDIRECTS = 5;
/** Waits before retry 1, 2, 3. */
export const DEFAULT_RETRY_DELAYS_MS = [200, 800, 2000];
/** Longest Retry-After (429/503) that is honoured; longer ones are cut to this. */
const MAX_RETRY_AFTER_MS = 10_000;

export interface TransportOptions {
  /** Delays before each retry; its length is the number of retries. */
  retryDelaysMs?: number[];
  connectTimeoutMs?: number;
  /** Time to wait for response headers. */
  headersTimeoutMs?: number;
  /** Longest silence inside a body before undici gives up (stall detection proper is the blob store's). */
  bodyTimeoutMs?: number;
  userAgent?: string;
}

export interface HttpRequest {
  method: "GET" | "HEAD" | "POST";
  url: URL;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  tls?: RegistryTLS;
  /** Log context: what this request is for. */
  what: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Uint8Array> & { dump(opts?: { limit: number }): Promise<void> };
  /** The URL that answered, after redirects. */
  url: URL;
}

/** A network-level failure (no HTTP answer), with whether a retry may help. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "NetworkError";
  }
}

/** Errors worth another try: resets, timeouts, closed sockets. Refused connections and DNS failures are not. */
export function isRetryableNetworkCode(code: string | undefined): boolean {
  if (code === undefined) return true;
  return ![
    "ECONNREFUSED",
    "ENOTFOUND",
    "EAI_FAIL",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "UND_ERR_INVALID_ARG",
    "UND_ERR_ABORTED",
    "ABORT_ERR",
    "ERR_TLS_CERT_ALTNAME_INVALID",
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "CERT_HAS_EXPIRED",
  ].includes(code);
}

function headerValue(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && a.host === b.host;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

type Undici = typeof import("undici/index.js");
let undici: Promise<Undici> | undefined;

/**
 * undici is loaded on the first registry request: evaluating it costs the daemon ~12 ms
 * of start-up and ~8 MiB that a node pulling nothing (images loaded from archives,
 * or all present) never needs.
 */
function loadUndici(): Promise<Undici> {
  return (undici ??= import("undici/index.js"));
}

export class HttpTransport {
  private readonly agents = new Map<string, Agent>();
  private readonly retryDelays: number[];

  constructor(private readonly opts: TransportOptions = {}) {
    this.retryDelays = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  }

  /** One pool per TLS setting; files are read when first needed. */
  private agent(tls: RegistryTLS | undefined, AgentClass: Undici["Agent"]): Agent {
    const key = JSON.stringify(tls ?? {});
    let a = this.agents.get(key);
    if (a) return a;
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file);
      } catch (e) {
        throw failedPrecondition(`cannot read registry TLS ${what} ${file}: ${errorMessage(e)}`);
      }
    };
    const connect: Record<string, unknown> = {};
    if (tls?.caFile) connect.ca = read(tls.caFile, "CA file");
    if (tls?.certFile) connect.cert = read(tls.certFile, "client certificate");
    if (tls?.keyFile) connect.key = read(tls.keyFile, "client key");
    if (tls?.insecureSkipVerify) connect.rejectUnauthorized = false;
    a = new AgentClass({
      connect,
      connectTimeout: this.opts.connectTimeoutMs ?? 30_000,
      headersTimeout: this.opts.headersTimeoutMs ?? 60_000,
      bodyTimeout: this.opts.bodyTimeoutMs ?? 300_000,
    });
    this.agents.set(key, a);
    return a;
  }

  /** One request and its redirects (at most MAX_REDIRECTS; Authorization dropped across origins). */
  private async once(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    const headers = { ...req.headers };
    if (this.opts.userAgent) headers["user-agent"] = this.opts.userAgent;
    const { Agent: AgentClass, request } = await loadUndici();
    for (let hop = 0; ; hop++) {
      let res;
      try {
        res = await request(url, {
          method: req.method,
          headers,
          body: req.body,
          signal: req.signal,
          dispatcher: this.agent(req.tls, AgentClass),
        });
      } catch (e) {
        if (req.signal?.aborted) throw req.signal.reason ?? e;
        if (e instanceof CribError) throw e;
        const code = errnoCode(e);
        throw new NetworkError(`${req.method} ${url.origin}${url.pathname}: ${errorMessage(e)}${code && !errorMessage(e).includes(code) ? ` (${code})` : ""}`, isRetryableNetworkCode(code), code, { cause: e });
      }
      const status = res.statusCode;
      const location = headerValue(res.headers, "location");
      if ([301, 302, 303, 307, 308].includes(status) && location !== undefined && req.method !== "POST") {
        await res.body.dump().catch(() => {});
        if (hop >= MAX_REDIRECTS) {
          throw registryUnavailable(`${req.what}: more than ${MAX_REDIRECTS} redirects, the last to ${new URL(location, url).origin}`);
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw registryUnavailable(`${req.what}: redirect to an invalid URL`);
        }
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          throw registryUnavailable(`${req.what}: redirect to a ${next.protocol} URL`);
        }
        // Credentials are for the registry only, never for blob storage elsewhere.
        if (!sameOrigin(next, url)) delete headers.authorization;
        logger.debug("redirect", { what: req.what, to: next.origin, status });
        url = next;
        continue;
      }
      return { status, headers: res.headers, body: res.body, url };
    }
  }

  /**
   * Send with retries: 5xx, 429 and retryable network errors are tried again
   * after the configured delays; the last answer (any status) is returned, or
   * the last network error thrown as NetworkError.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.retryDelays.length;
      let res: HttpResponse;
      try {
        res = await this.once(req);
      } catch (e) {
        if (!(e instanceof NetworkError) || !e.retryable || last) throw e;
        logger.debug("retrying after network error", { what: req.what, attempt: attempt + 1, error: e.message });
        await sleep(this.retryDelays[attempt]!, req.signal);
        continue;
      }
      if ((res.status >= 500 || res.status === 429) && !last) {
        await res.body.dump().catch(() => {});
        let wait = this.retryDelays[attempt]!;
        const retryAfter = Number(headerValue(res.headers, "retry-after"));
        if (Number.isFinite(retryAfter) && retryAfter > 0) wait = Math.max(wait, Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS));
        logger.debug("retrying after HTTP error", { what: req.what, status: res.status, attempt: attempt + 1 });
        await sleep(wait, req.signal);
        continue;
      }
      return res;
    }
  }

  async close(): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => {})));
  }
}

/** Read a whole body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number, what: string): Promise<Uint8Array> {
  const declared = Number(headerValue(res.headers, "content-length"));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body.dump({ limit: 0 }).catch(() => {});
    throw resourceExhausted(`${what} is ${declared} bytes, over the ${limit} byte limit`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  let over = false;
  for await (const chunk of res.body) {
    total += chunk.length;
    if (total > limit) {
      // Leaving the loop ends the body (the iterator's return destroys it). A dump()
      // from inside the loop waited forever on a body that never ends: the
      // iterator holds the stream paused, so dump() never saw data to stop at.
      over = true;
      break;
    }
    chunks.push(chunk);
  }
  if (over) throw resourceExhausted(`${what} is over the ${limit} byte limit`);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export { headerValue };
