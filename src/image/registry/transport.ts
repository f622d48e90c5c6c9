// HTTP for the registry client, over Bun's own fetch: bounded redirects (followed
// here, so credentials never leave the registry's origin), retries with backoff for
// what a retry can fix (5xx, 429, connections reset or timed out), and timeouts for
// an answer and for a silent body. Never logs headers: they carry credentials and
// tokens.
//
// Bun's fetch runs the HTTP client on its own native thread with a keep-alive pool,
// takes TLS options per request, and costs nothing to load; the undici package it
// replaced was over half of the JavaScript in the binary (~0.9 MB of the zstd
// download) and ~8 MiB once loaded. Bun's fetch also honours HTTP(S)_PROXY/NO_PROXY,
// as containerd's and CRI-O's Go clients do (loopback hosts excepted, as there).
import { readFileSync } from "node:fs";
import type { RegistryTLS } from "../../config/config.ts";
import { CribError, errnoCode, errorMessage, failedPrecondition, registryUnavailable, resourceExhausted } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import { readerChunks } from "../../util/reader_chunks.ts";
import { isLoopbackHost } from "./hosts.ts";

const logger = log.with({ component: "registry" });

export const MAX_REDIRECTS = 5;
/** Waits before retry 1, 2, 3. */
export const DEFAULT_RETRY_DELAYS_MS = [200, 800, 2000];
/** Longest Retry-After (429/503) that is honoured; longer ones are cut to this. */
const MAX_RETRY_AFTER_MS = 10_000;
/** What dump() reads by default to leave a connection reusable; a longer body is cut off. */
const DUMP_LIMIT = 128 * 1024;

export interface TransportOptions {
  /** Delays before each retry; its length is the number of retries. */
  retryDelaysMs?: number[];
  /** Time to connect and receive the response headers. */
  headersTimeoutMs?: number;
  /** Longest silence inside a body before the request is abandoned (stall detection proper is the blob store's). */
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

/** A response body: read it (async iteration), or dump() it to end the exchange. */
export interface ResponseBody extends AsyncIterable<Uint8Array> {
  /** Read and drop up to `limit` bytes (128 KiB by default), then close the body. */
  dump(opts?: { limit: number }): Promise<void>;
}

export interface HttpResponse {
  status: number;
  /** Header names in lower case; repeated headers joined with ", " as HTTP allows. */
  headers: Record<string, string | undefined>;
  body: ResponseBody;
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
    "ABORT_ERR",
    "ERR_TLS_CERT_ALTNAME_INVALID",
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "CERT_HAS_EXPIRED",
  ].includes(code);
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

/** Bun's TLS options for fetch (a Bun extension of RequestInit). */
interface FetchTLS {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}

/** RequestInit with Bun's extensions that we use. */
interface BunRequestInit extends Omit<RequestInit, "proxy"> {
  /** false: straight to the host, whatever HTTP(S)_PROXY says. */
  proxy?: false;
  tls?: FetchTLS;
  /** false: hand over the bytes as sent (a gzip layer must keep its digest). */
  decompress?: boolean;
  /** false: no timeout of Bun's own; ours are below. */
  timeout?: boolean;
}

export class HttpTransport {
  /** TLS options per setting; the files are read when first needed. */
  private readonly tlsOptions = new Map<string, FetchTLS>();
  private readonly retryDelays: number[];
  private readonly headersTimeoutMs: number;
  private readonly bodyTimeoutMs: number;

  constructor(private readonly opts: TransportOptions = {}) {
    this.retryDelays = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 60_000;
    this.bodyTimeoutMs = opts.bodyTimeoutMs ?? 300_000;
  }

  private tlsFor(tls: RegistryTLS | undefined): FetchTLS | undefined {
    if (tls === undefined) return undefined;
    const key = JSON.stringify(tls);
    let t = this.tlsOptions.get(key);
    if (t) return t;
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file, "utf8");
      } catch (e) {
        throw failedPrecondition(`cannot read registry TLS ${what} ${file}: ${errorMessage(e)}`);
      }
    };
    t = {};
    if (tls.caFile) t.ca = read(tls.caFile, "CA file");
    if (tls.certFile) t.cert = read(tls.certFile, "client certificate");
    if (tls.keyFile) t.key = read(tls.keyFile, "client key");
    if (tls.insecureSkipVerify) t.rejectUnauthorized = false;
    this.tlsOptions.set(key, t);
    return t;
  }

  /** One exchange, no redirects followed: the answer's headers within the headers timeout. */
  private async exchange(req: HttpRequest, url: URL, headers: Record<string, string>): Promise<HttpResponse> {
    // One controller per exchange: the caller's cancel, the headers timeout and the
    // body's silence all end it.
    const ctl = new AbortController();
    let timedOut: string | undefined;
    const expire = (why: string) => () => {
      timedOut = why;
      ctl.abort(new Error(why));
    };
    const onCallerAbort = () => ctl.abort(req.signal?.reason);
    if (req.signal?.aborted) throw req.signal.reason;
    req.signal?.addEventListener("abort", onCallerAbort, { once: true });
    const headersTimer = setTimeout(expire(`no answer within ${this.headersTimeoutMs / 1000}s`), this.headersTimeoutMs);
    const fail = (e: unknown): never => {
      if (req.signal?.aborted) throw req.signal.reason ?? e;
      if (e instanceof CribError) throw e;
      const code = timedOut ? "ETIMEDOUT" : errnoCode(e);
      // Bun's messages end with advice for fetch's callers ("pass `verbose: true`..."), not for an operator.
      const message = timedOut ?? errorMessage(e).replace(/\s*For more information, pass `verbose: true`.*$/s, "");
      throw new NetworkError(`${req.method} ${url.origin}${url.pathname}: ${message}${code && !message.includes(code) ? ` (${code})` : ""}`, isRetryableNetworkCode(code), code, { cause: e });
    };
    let res: Response;
    try {
      const init: BunRequestInit = {
        method: req.method,
        headers,
        body: req.body,
        signal: ctl.signal,
        redirect: "manual",
        decompress: false,
        timeout: false,
        tls: this.tlsFor(req.tls),
        // A loopback registry is never reached through a proxy (Go's ProxyFromEnvironment,
        // and so containerd and CRI-O, make the same exception); Bun's fetch would.
        ...(isLoopbackHost(url.host) ? { proxy: false as const } : {}),
      };
      res = await fetch(url, init);
    } catch (e) {
      req.signal?.removeEventListener("abort", onCallerAbort);
      return fail(e);
    } finally {
      clearTimeout(headersTimer);
    }
    const out: Record<string, string> = {};
    res.headers.forEach((value, name) => {
      out[name] = value;
    });
    const bodyTimeoutMs = this.bodyTimeoutMs;
    const done = () => req.signal?.removeEventListener("abort", onCallerAbort);
    const stream = res.body;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const open = () => {
      if (reader) throw new Error("a response body is read once");
      reader = stream?.getReader() as ReadableStreamDefaultReader<Uint8Array> | undefined;
      return reader;
    };
    const body: ResponseBody = {
      async *[Symbol.asyncIterator]() {
        const r = open();
        if (!r) return done();
        const silence = setTimeout(expire(`no data for ${bodyTimeoutMs / 1000}s`), bodyTimeoutMs);
        try {
          // A reader that stops early cancels the body, and so frees the connection.
          for await (const chunk of readerChunks<Uint8Array>(r, fail)) {
            silence.refresh();
            yield chunk;
          }
        } finally {
          clearTimeout(silence);
          done();
        }
      },
      async dump(opts?: { limit: number }) {
        const limit = opts?.limit ?? DUMP_LIMIT;
        const r = open();
        try {
          for (let n = 0; r && n <= limit; ) {
            const chunk = await r.read();
            if (chunk.done) return;
            n += chunk.value.length;
          }
          await r?.cancel();
        } finally {
          done();
        }
      },
    };
    return { status: res.status, headers: out, body, url };
  }

  /** One request and its redirects (at most MAX_REDIRECTS; Authorization dropped across origins). */
  private async once(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    const headers = { ...req.headers };
    if (this.opts.userAgent) headers["user-agent"] = this.opts.userAgent;
    for (let hop = 0; ; hop++) {
      const res = await this.exchange(req, url, headers);
      const status = res.status;
      const location = res.headers.location;
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
      return res;
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
        const retryAfter = Number(res.headers["retry-after"]);
        if (Number.isFinite(retryAfter) && retryAfter > 0) wait = Math.max(wait, Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS));
        logger.debug("retrying after HTTP error", { what: req.what, status: res.status, attempt: attempt + 1 });
        await sleep(wait, req.signal);
        continue;
      }
      return res;
    }
  }

  /** Forget the TLS settings read; Bun's fetch owns (and reaps) its idle connections. */
  async close(): Promise<void> {
    this.tlsOptions.clear();
  }
}

/** Read a whole body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers["content-length"]);
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
