// Real Debian `docker-registry` (docker/distribution 2.8) instances on 127.0.0.1 for
// tests: anonymous, htpasswd basic auth, or bearer-token auth with a tiny token server
// running inside the test process.
//
// The token mode is the registry's own `auth: token:` implementation: it trusts JWTs
// whose `x5c` header carries a certificate that chains to `rootcertbundle`. We sign
// with an ES256 key whose self-signed certificate *is* that bundle, so the leaf is the
// root. The registry checks `iss` == issuer, `aud` == service, `exp`/`nbf` (60 s
// leeway) and then the `access` claim against the scope each request needs.

import { createPrivateKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestRegistry {
  /** "127.0.0.1:PORT", the host part of image references. */
  host: string;
  /** "http://127.0.0.1:PORT" */
  url: string;
  /** Temp dir holding config, storage and the registry's log (registry.log). */
  dir: string;
  stop(): Promise<void>;
}

export type RegistryAuth = "basic" | "token";

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** Defaults to "crib" / a random password when auth is set. */
  username?: string;
  password?: string;
  /** Lifetime of issued tokens (token mode), default 300 s. */
  tokenTtlSeconds?: number;
}

/** One request the token server answered, in order. */
export interface TokenRequestRecord {
  method: "GET" | "POST";
  username: string | undefined;
  scopes: string[];
  /** HTTP status returned: 200 with a token, 401 for missing or wrong credentials. */
  status: number;
}

export interface StartedRegistry extends TestRegistry {
  auth: RegistryAuth | undefined;
  username?: string;
  password?: string;
}

export interface TokenRegistry extends StartedRegistry {
  auth: "token";
  username: string;
  password: string;
  /** "http://127.0.0.1:PORT/token", the realm the registry challenges with. */
  realm: string;
  /** The `service` the registry expects (also the token audience). */
  service: string;
  /** Number of requests the token server received (successful or not). */
  tokenRequests(): number;
  /** Every token request so far, oldest first. */
  tokenRequestLog(): readonly TokenRequestRecord[];
}

export interface BasicRegistry extends StartedRegistry {
  auth: "basic";
  username: string;
  password: string;
}

const REGISTRY_BIN = "/usr/bin/docker-registry";
const TOKEN_SERVICE = "crib-test-registry";
const TOKEN_ISSUER = "crib-test-token-issuer";

// Registries still running: killed when the test process exits, even without stop().
const live = new Set<{ pid: number }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const p of live) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** Asks the kernel for a free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("freePort: could not read the bound address"));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

function yamlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

function registryConfig(opts: { port: number; dir: string; authBlock: string }): string {
  return [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${yamlString(join(opts.dir, "storage"))}`,
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: ${yamlString(`127.0.0.1:${opts.port}`)}`,
    `  secret: ${yamlString(randomBytes(16).toString("hex"))}`,
    opts.authBlock,
    "",
  ].join("\n");
}

interface TokenSigner {
  certPath: string;
  key: KeyObject;
  certDerB64: string;
}

/** A P-256 key and its self-signed certificate (the registry's rootcertbundle). */
function makeTokenSigner(dir: string): TokenSigner {
  const keyPath = join(dir, "token-key.pem");
  const certPath = join(dir, "token-cert.pem");
  const r = Bun.spawnSync(
    [
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
      "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "7", "-subj", `/CN=${TOKEN_ISSUER}`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (r.exitCode !== 0) {
    throw new Error(`openssl could not create the token signing certificate: ${r.stderr.toString()}`);
  }
  const pem = readFileSync(certPath, "utf8");
  const b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
  return { certPath, key: createPrivateKey(readFileSync(keyPath)), certDerB64: b64 };
}

function b64url(data: Uint8Array | string): string {
  return Buffer.from(data).toString("base64url");
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** Parses "repository:foo/bar:pull,push" (names may not hold ':' but hosts could; take the last one). */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(",").filter((a) => a !== ""),
  };
}

function issueToken(signer: TokenSigner, subject: string, scopes: string[], ttl: number): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: "JWT", alg: "ES256", x5c: [signer.certDerB64] };
  const claims = {
    iss: TOKEN_ISSUER,
    sub: subject,
    aud: TOKEN_SERVICE,
    exp: now + ttl,
    nbf: now - 1,
    iat: now,
    jti: randomBytes(12).toString("hex"),
    access: scopes.map(parseScope).filter((a): a is Access => a !== undefined),
  };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // JWS ES256 wants the raw r||s signature, not DER.
  const sig = sign("sha256", Buffer.from(signingInput), { key: signer.key, dsaEncoding: "ieee-p1363" });
  return `${signingInput}.${b64url(sig)}`;
}

function basicCredentials(header: string | null): { username: string; password: string } | undefined {
  if (header === null || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Constant-ish comparison is not needed in a test; plain equality keeps it readable. */
function credentialsMatch(got: { username: string; password: string } | undefined, username: string, password: string): boolean {
  return got !== undefined && got.username === username && got.password === password;
}

interface TokenServer {
  realm: string;
  stop(): void;
  count(): number;
  log(): readonly TokenRequestRecord[];
}

/**
 * The docker token protocol: GET /token?service=..&scope=.. with basic credentials, and
 * the OAuth2 form POST (grant_type=password). Wrong or missing credentials get 401.
 */
function startTokenServer(signer: TokenSigner, username: string, password: string, ttl: number): TokenServer {
  const records: TokenRequestRecord[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/token") return new Response("not found", { status: 404 });
      let creds: { username: string; password: string } | undefined;
      let scopes: string[];
      let service: string | null;
      let method: "GET" | "POST";
      if (req.method === "POST") {
        method = "POST";
        const form = new URLSearchParams(await req.text());
        const u = form.get("username");
        const p = form.get("password");
        creds = form.get("grant_type") === "password" && u !== null && p !== null ? { username: u, password: p } : undefined;
        scopes = (form.get("scope") ?? "").split(" ").filter((s) => s !== "");
        service = form.get("service");
      } else if (req.method === "GET") {
        method = "GET";
        creds = basicCredentials(req.headers.get("authorization"));
        scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter((s) => s !== "");
        service = url.searchParams.get("service");
      } else {
        return new Response("method not allowed", { status: 405 });
      }
      if (!credentialsMatch(creds, username, password)) {
        records.push({ method, username: creds?.username, scopes, status: 401 });
        return Response.json(
          { errors: [{ code: "UNAUTHORIZED", message: "token server: bad or missing credentials" }] },
          { status: 401, headers: { "WWW-Authenticate": 'Basic realm="crib-test-token"' } },
        );
      }
      if (service !== null && service !== TOKEN_SERVICE) {
        records.push({ method, username: creds?.username, scopes, status: 400 });
        return Response.json({ errors: [{ code: "DENIED", message: `unknown service ${service}` }] }, { status: 400 });
      }
      records.push({ method, username, scopes, status: 200 });
      const token = issueToken(signer, username, scopes, ttl);
      return Response.json({
        token,
        access_token: token,
        expires_in: ttl,
        issued_at: new Date().toISOString(),
      });
    },
  });
  return {
    realm: `http://127.0.0.1:${server.port}/token`,
    stop: () => void server.stop(true),
    count: () => records.length,
    log: () => records,
  };
}

async function waitReady(url: string, proc: Bun.Subprocess, logPath: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`docker-registry exited (${proc.exitCode ?? proc.signalCode}) before answering: ${readLog(logPath)}`);
    }
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`docker-registry at ${url} did not answer GET /v2/ within 20 s: ${readLog(logPath)}`);
    await Bun.sleep(25);
  }
}

function readLog(path: string): string {
  try {
    return readFileSync(path, "utf8").slice(-2000);
  } catch {
    return "(no log)";
  }
}

async function stopProcess(proc: Bun.Subprocess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
  await proc.exited;
  clearTimeout(timer);
}

export async function startRegistry(opts: StartRegistryOptions & { auth: "token" }): Promise<TokenRegistry>;
export async function startRegistry(opts: StartRegistryOptions & { auth: "basic" }): Promise<BasicRegistry>;
export async function startRegistry(opts?: StartRegistryOptions): Promise<StartedRegistry>;
/**
 * Starts `docker-registry serve` on a free 127.0.0.1 port with its own temp storage.
 * With auth, `username`/`password` on the result are the credentials to use.
 */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<StartedRegistry> {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), "crib-registry-"));
  let tokenServer: TokenServer | undefined;
  try {
    const username = opts.auth !== undefined ? (opts.username ?? "crib") : undefined;
    const password = opts.auth !== undefined ? (opts.password ?? randomBytes(9).toString("base64url")) : undefined;
    let authBlock = "";
    if (opts.auth === "basic" && username !== undefined && password !== undefined) {
      const hash = await Bun.password.hash(password, { algorithm: "bcrypt", cost: 4 });
      const htpasswd = join(dir, "htpasswd");
      writeFileSync(htpasswd, `${username}:${hash}\n`);
      authBlock = ["auth:", "  htpasswd:", "    realm: crib-test-registry", `    path: ${yamlString(htpasswd)}`].join("\n");
    } else if (opts.auth === "token" && username !== undefined && password !== undefined) {
      const signer = makeTokenSigner(dir);
      tokenServer = startTokenServer(signer, username, password, opts.tokenTtlSeconds ?? 300);
      authBlock = [
        "auth:",
        "  token:",
        `    realm: ${yamlString(tokenServer.realm)}`,
        `    service: ${yamlString(TOKEN_SERVICE)}`,
        `    issuer: ${yamlString(TOKEN_ISSUER)}`,
        `    rootcertbundle: ${yamlString(signer.certPath)}`,
      ].join("\n");
    }

    // The port is picked before the registry binds it; retry if someone took it meanwhile.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const configPath = join(dir, "config.yml");
      writeFileSync(configPath, registryConfig({ port, dir, authBlock }));
      const logPath = join(dir, "registry.log");
      const logFd = openSync(logPath, "a");
      const proc = Bun.spawn([REGISTRY_BIN, "serve", configPath], { stdin: "ignore", stdout: logFd, stderr: logFd });
      closeSync(logFd);
      const handle = { pid: proc.pid };
      live.add(handle);
      try {
        await waitReady(url, proc, logPath);
      } catch (err) {
        lastError = err;
        await stopProcess(proc);
        live.delete(handle);
        continue;
      }
      const ts = tokenServer;
      let stopped = false;
      const base: StartedRegistry = {
        host: `127.0.0.1:${port}`,
        url,
        dir,
        auth: opts.auth,
        async stop() {
          if (stopped) return;
          stopped = true;
          await stopProcess(proc);
          live.delete(handle);
          ts?.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
      if (username !== undefined && password !== undefined) {
        base.username = username;
        base.password = password;
      }
      if (ts !== undefined) {
        const tokenReg: TokenRegistry = {
          ...base,
          auth: "token",
          username: username ?? "",
          password: password ?? "",
          realm: ts.realm,
          service: TOKEN_SERVICE,
          tokenRequests: () => ts.count(),
          tokenRequestLog: () => ts.log(),
        };
        return tokenReg;
      }
      return base;
    }
    throw lastError instanceof Error ? lastError : new Error(`docker-registry did not start: ${String(lastError)}`);
  } catch (err) {
    tokenServer?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

