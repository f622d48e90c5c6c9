// The registry client and blob store against real docker-registry instances, and
// small Bun.serve proxies in front of them that misbehave on purpose (alter bytes,
// cut bodies, ignore Range, redirect, drip slowly, fail with 5xx).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../../src/config/config.ts";
import { CribError } from "../../src/errors.ts";
import { BlobStore } from "../../src/image/blob_store.ts";
import { digestOf } from "../../src/image/digest.ts";
import type { Descriptor, Platform } from "../../src/image/manifest.ts";
import * as mt from "../../src/image/media_types.ts";
import { parseReference, type ImageRef } from "../../src/image/reference.ts";
import { parseChallenges, toCredentials } from "../../src/image/registry/auth.ts";
import { RegistryClient } from "../../src/image/registry/client.ts";
import { endpointsFor, isLoopbackHost } from "../../src/image/registry/hosts.ts";
import { pushImage, pushIndex, randomLayer, type PushedImage } from "../helpers/images.ts";
import { freePort, startRegistry, type BasicRegistry, type StartedRegistry, type TokenRegistry } from "../helpers/registry.ts";
import type { TarEntry } from "../helpers/tar.ts";
import { rejection as rejectionOf } from "../helpers/reject.ts";

const AMD64: Platform = { os: "linux", architecture: "amd64" };
const ARM64: Platform = { os: "linux", architecture: "arm64", variant: "v8" };
const FAST_RETRIES = [5, 10, 20];

type Registries = Config["registries"];
const noRegistries = (): Registries => ({ mirrors: {}, configs: {} });

const clients: RegistryClient[] = [];
function client(registries: Registries = noRegistries()): RegistryClient {
  const c = new RegistryClient({ registries, retryDelaysMs: FAST_RETRIES });
  clients.push(c);
  return c;
}

const small = (name: string, text = name): TarEntry[] => [{ type: "file", path: `${name}.txt`, data: text }];

const rejection = (p: Promise<unknown>) => rejectionOf(p, CribError);

/** A proxy in front of a registry; `handle` may answer itself, else the request is forwarded. */
interface Proxy {
  host: string;
  url: string;
  requests: Array<{ path: string; range: string | null; authorization: string | null }>;
  stop(): void;
}

function forward(upstream: string, req: Request, headers?: Headers): Promise<Response> {
  const u = new URL(req.url);
  const h = new Headers(headers ?? req.headers);
  h.delete("host");
  return fetch(`${upstream}${u.pathname}${u.search}`, { method: req.method, headers: h, redirect: "manual", decompress: false } as RequestInit);
}

function startProxy(upstream: string, handle?: (req: Request, path: string) => Promise<Response | undefined> | Response | undefined): Proxy {
  const requests: Proxy["requests"] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 30,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      requests.push({ path, range: req.headers.get("range"), authorization: req.headers.get("authorization") });
      const own = handle ? await handle(req, path) : undefined;
      return own ?? forward(upstream, req);
    },
  });
  return { host: `127.0.0.1:${server.port}`, url: `http://127.0.0.1:${server.port}`, requests, stop: () => void server.stop(true) };
}

/** The ref of a pushed image seen through another host (a proxy). */
function via(host: string, img: PushedImage): ImageRef {
  return parseReference(`${host}/${img.repo}:${img.tag}`);
}

async function blobBytes(reg: StartedRegistry, repo: string, digest: string): Promise<Uint8Array> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
  return new Uint8Array(await res.arrayBuffer());
}

let reg: StartedRegistry;
let tokenReg: TokenRegistry;
let basicReg: BasicRegistry;
let mirrorReg: StartedRegistry;
let oci: PushedImage;
let docker: PushedImage;
let big: PushedImage;
let amd: PushedImage;
let arm: PushedImage;
let index: { ref: string; digest: string; bytes: Uint8Array };
let list: { ref: string; digest: string };
let root: string;
const proxies: Proxy[] = [];
const proxy = (...args: Parameters<typeof startProxy>) => {
  const p = startProxy(...args);
  proxies.push(p);
  return p;
};

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "crib-registry-client-"));
  // One at a time, so afterAll stops every one that started even if a later one fails.
  reg = await startRegistry();
  tokenReg = await startRegistry({ auth: "token" });
  basicReg = await startRegistry({ auth: "basic" });
  mirrorReg = await startRegistry();
  oci = await pushImage(reg, "app:oci", { layers: [small("a"), small("b")], config: { Cmd: ["/bin/sh"] } });
  docker = await pushImage(reg, "app:docker", { format: "docker", layers: [small("d")] });
  big = await pushImage(reg, "big:1", { compression: "none", layers: [randomLayer(600_000, 7)] });
  amd = await pushImage(reg, "multi:amd64", { layers: [small("amd")], architecture: "amd64" });
  arm = await pushImage(reg, "multi:arm64", { layers: [small("arm")], architecture: "arm64", variant: "v8" });
  index = await pushIndex(reg, "multi:latest", [amd, arm]);
  list = await pushIndex(reg, "multi:list", [amd, arm], { format: "docker" });
  await pushImage(tokenReg, "secret/app:1", { layers: [small("t")] });
  await pushImage(basicReg, "private:1", { layers: [small("p")] });
  await pushImage(mirrorReg, "only-in-mirror:1", { layers: [small("m")] });
}, 120_000);

afterAll(async () => {
  // Each step on its own: one failing must not leave registries running.
  for (const p of proxies) p.stop();
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled([reg, tokenReg, basicReg, mirrorReg].filter((r) => r !== undefined).map((r) => r.stop()));
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("resolve", () => {
  test("anonymous pull of an OCI image, blobs into the store", async () => {
    const c = client();
    const ref = parseReference(oci.ref);
    const r = await c.resolve(ref, AMD64);
    expect(r.manifestDigest).toBe(oci.digest);
    expect(r.manifestBytes).toEqual(oci.manifestBytes);
    expect(r.manifest.mediaType).toBe(mt.OCI_MANIFEST);
    expect(r.manifest.config.digest).toBe(oci.configDigest);
    expect(r.manifest.layers.map((l) => l.digest)).toEqual(oci.layers.map((l) => l.digest));
    expect(r.index).toBeUndefined();
    expect(r.endpoint).toBe(reg.host);

    const store = new BlobStore(join(root, "anon"));
    for (const d of [r.manifest.config, ...r.manifest.layers]) {
      const got = await store.ensure(d, (offset, signal) => c.fetchBlob(ref, d, { offset, signal }));
      expect(got.size).toBe(d.size);
      expect(digestOf(new Uint8Array(readFileSync(got.path)))).toBe(d.digest);
    }
  });

  test("a Docker schema 2 image", async () => {
    const r = await client().resolve(parseReference(docker.ref), AMD64);
    expect(r.manifestDigest).toBe(docker.digest);
    expect(r.manifest.mediaType).toBe(mt.DOCKER_MANIFEST);
    expect(r.manifest.layers[0]?.mediaType).toBe(mt.DOCKER_LAYER_GZIP);
  });

  test("by digest, and by tag plus digest", async () => {
    const c = client();
    const byDigest = await c.resolve(parseReference(`${reg.host}/${oci.repo}@${oci.digest}`), AMD64);
    expect(byDigest.manifestDigest).toBe(oci.digest);
    // The digest wins: the tag names another image.
    const both = await c.resolve(parseReference(`${reg.host}/${oci.repo}:docker@${oci.digest}`), AMD64);
    expect(both.manifestDigest).toBe(oci.digest);
  });

  test("an OCI index and a Docker manifest list: platform selection", async () => {
    const c = client();
    const a = await c.resolve(parseReference(index.ref), AMD64);
    expect(a.manifestDigest).toBe(amd.digest);
    expect(a.index?.digest).toBe(index.digest);
    expect(a.index?.bytes).toEqual(index.bytes);
    const b = await c.resolve(parseReference(index.ref), ARM64);
    expect(b.manifestDigest).toBe(arm.digest);
    const aarch = await c.resolve(parseReference(list.ref), { os: "linux", architecture: "aarch64" });
    expect(aarch.manifestDigest).toBe(arm.digest);
    expect(aarch.index?.manifest.mediaType).toBe(mt.DOCKER_MANIFEST_LIST);

    const e = await rejection(c.resolve(parseReference(index.ref), { os: "linux", architecture: "s390x" }));
    expect(e.kind).toBe("not_found");
    expect(e.message).toContain("linux/s390x");
    expect(e.message).toContain("linux/amd64, linux/arm64/v8");
  });

  test("404: not_found naming host, repository and tag", async () => {
    const c = client();
    const e = await rejection(c.resolve(parseReference(`${reg.host}/app:nope`), AMD64));
    expect(e.kind).toBe("not_found");
    expect(e.message).toContain("manifest unknown");
    expect(e.message).toContain(`${reg.host}/app:nope`);
    expect(e.message).toContain("HTTP 404");
    const missing: Descriptor = { mediaType: mt.OCI_LAYER_GZIP, digest: digestOf("nothing"), size: 7 };
    const b = await rejection(c.fetchBlob(parseReference(oci.ref), missing));
    expect(b.kind).toBe("not_found");
    expect(b.message).toContain("blob unknown");
    expect(b.message).toContain(missing.digest);
  });
});

describe("auth", () => {
  test("bearer tokens are fetched once and cached across resolves and blobs", async () => {
    const c = client({ mirrors: {}, configs: { [tokenReg.host]: { auth: { username: tokenReg.username, password: tokenReg.password } } } });
    const ref = parseReference(`${tokenReg.host}/secret/app:1`);
    const before = tokenReg.tokenRequests();
    const r = await c.resolve(ref, AMD64);
    expect(tokenReg.tokenRequests() - before).toBe(1);
    await c.resolve(ref, AMD64);
    const store = new BlobStore(join(root, "token"));
    const layer = r.manifest.layers[0]!;
    await store.ensure(layer, (offset, signal) => c.fetchBlob(ref, layer, { offset, signal }));
    expect(tokenReg.tokenRequests() - before).toBe(1);
    expect(c.tokenRequests).toBe(1);
    const last = tokenReg.tokenRequestLog().at(-1);
    expect(last?.scopes).toEqual(["repository:secret/app:pull"]);
    expect(last?.username).toBe(tokenReg.username);
  });

  test("per-request CRI credentials (base64 auth) win over the config's", async () => {
    const c = client({ mirrors: {}, configs: { [tokenReg.host]: { auth: { username: "wrong", password: "wrong" } } } });
    const auth = Buffer.from(`${tokenReg.username}:${tokenReg.password}`).toString("base64");
    const r = await c.resolve(parseReference(`${tokenReg.host}/secret/app:1`), AMD64, { auth: { auth } });
    expect(r.manifest.layers).toHaveLength(1);
  });

  test("wrong or missing credentials: a clear unauthorized error", async () => {
    const ref = parseReference(`${tokenReg.host}/secret/app:1`);
    const wrong = await rejection(client().resolve(ref, AMD64, { auth: { username: tokenReg.username, password: "bad" } }));
    expect(wrong.kind).toBe("permission_denied");
    expect(wrong.message).toContain("unauthorized");
    expect(wrong.message).toContain(tokenReg.host);
    expect(wrong.message).not.toContain(tokenReg.password);
    const anonymous = await rejection(client().resolve(ref, AMD64));
    expect(anonymous.kind).toBe("permission_denied");
    expect(anonymous.message).toContain("anonymous");
  });

  test("basic auth", async () => {
    const ref = parseReference(`${basicReg.host}/private:1`);
    const c = client({ mirrors: {}, configs: { [basicReg.host]: { auth: { username: basicReg.username, password: basicReg.password } } } });
    const r = await c.resolve(ref, AMD64);
    const store = new BlobStore(join(root, "basic"));
    const layer = r.manifest.layers[0]!;
    await store.ensure(layer, (offset, signal) => c.fetchBlob(ref, layer, { offset, signal }));
    expect(await store.has(layer.digest)).toBe(true);

    const e = await rejection(client().resolve(ref, AMD64, { auth: { username: basicReg.username, password: "nope" } }));
    expect(e.kind).toBe("permission_denied");
    expect(e.message).toContain(`unauthorized: ${basicReg.host} refused access to ${basicReg.host}/private:1`);
    expect(e.message).toContain("HTTP 401");
  });
});

describe("mirrors", () => {
  test("a mirror listed first serves the image; misses fall back to the upstream", async () => {
    const c = client({ mirrors: { [reg.host]: { endpoint: [mirrorReg.url] } }, configs: {} });
    const fromMirror = await c.resolve(parseReference(`${reg.host}/only-in-mirror:1`), AMD64);
    expect(fromMirror.endpoint).toBe(mirrorReg.host);
    const layer = fromMirror.manifest.layers[0]!;
    const store = new BlobStore(join(root, "mirror"));
    const ref = parseReference(`${reg.host}/only-in-mirror:1`);
    await store.ensure(layer, (offset, signal) => c.fetchBlob(ref, layer, { offset, signal }));
    expect(await store.has(layer.digest)).toBe(true);

    const fromUpstream = await c.resolve(parseReference(oci.ref), AMD64);
    expect(fromUpstream.endpoint).toBe(reg.host);
    expect(fromUpstream.manifestDigest).toBe(oci.digest);
  });

  test("a dead mirror falls back to the upstream", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = client({ mirrors: { [reg.host]: { endpoint: [dead] } }, configs: {} });
    const r = await c.resolve(parseReference(oci.ref), AMD64);
    expect(r.endpoint).toBe(reg.host);
    expect(r.manifestDigest).toBe(oci.digest);
  });

  test("an https mirror: verified with caFile, or insecureSkipVerify; an unverifiable one is skipped", async () => {
    const dir = mkdtempSync(join(root, "tls-"));
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    const made = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(made.exitCode).toBe(0);
    const tlsMirror = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") },
      fetch: (req) => forward(mirrorReg.url, req),
    });
    try {
      const mirrorHost = `127.0.0.1:${tlsMirror.port}`;
      const mirrors = { [reg.host]: { endpoint: [`https://${mirrorHost}`] } };
      const ref = parseReference(`${reg.host}/only-in-mirror:1`);
      const withCa = await client({ mirrors, configs: { [mirrorHost]: { tls: { caFile: cert } } } }).resolve(ref, AMD64);
      expect(withCa.endpoint).toBe(mirrorHost);
      const skip = await client({ mirrors, configs: { [mirrorHost]: { tls: { insecureSkipVerify: true } } } }).resolve(ref, AMD64);
      expect(skip.endpoint).toBe(mirrorHost);
      // Unverifiable: the mirror is skipped, and the upstream does not have this image.
      const e = await rejection(client({ mirrors, configs: {} }).resolve(ref, AMD64));
      expect(e.kind).toBe("not_found");
      expect(e.message).toContain(`also tried: ${mirrorHost}`);
    } finally {
      void tlsMirror.stop(true);
    }
  });

  test("when every endpoint fails, the error lists them", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = client({ mirrors: { [reg.host]: { endpoint: [dead] } }, configs: {} });
    const e = await rejection(c.resolve(parseReference(`${reg.host}/app:nope`), AMD64));
    expect(e.kind).toBe("not_found");
    expect(e.message).toContain("also tried");
    expect(e.message).toContain(new URL(dead).host);
  });
});

describe("hostile or broken servers", () => {
  test("an altered manifest byte is a digest mismatch", async () => {
    const alter = async (req: Request, path: string) => {
      if (!path.includes("/manifests/")) return undefined;
      const res = await forward(reg.url, req);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const at = new TextDecoder().decode(bytes).indexOf('"size":') + 7;
      bytes[at] = bytes[at] === 0x31 ? 0x32 : 0x31; // another digit: still valid JSON
      return new Response(bytes, { status: res.status, headers: res.headers });
    };
    const p = proxy(reg.url, alter);
    const byTag = await rejection(client().resolve(via(p.host, oci), AMD64));
    expect(byTag.kind).toBe("failed_precondition");
    expect(byTag.message).toContain("digest mismatch");
    expect(byTag.message).toContain(`${p.host}/app:oci`);

    // Without Docker-Content-Digest, the reference's own digest still catches it.
    const strip = proxy(reg.url, async (req, path) => {
      const res = await alter(req, path);
      if (!res) return undefined;
      const h = new Headers(res.headers);
      h.delete("docker-content-digest");
      return new Response(await res.arrayBuffer(), { status: res.status, headers: h });
    });
    const byDigest = await rejection(client().resolve(parseReference(`${strip.host}/${oci.repo}@${oci.digest}`), AMD64));
    expect(byDigest.message).toContain("digest mismatch");
    expect(byDigest.message).toContain(oci.digest);
  });

  test("a body cut mid-way is resumed with Range", async () => {
    const layer = big.layers[0]!;
    const full = await blobBytes(reg, big.repo, layer.digest);
    const half = Math.floor(full.length / 2);
    // A raw HTTP server for the blob: without Range it promises the whole blob,
    // sends half and drops the connection; with Range it answers 206.
    const ranges: Array<string | undefined> = [];
    const server = createServer((socket) => {
      let head = "";
      socket.on("data", (chunk) => {
        head += chunk.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        const range = /^range: bytes=(\d+)-\r$/im.exec(head)?.[1];
        ranges.push(range);
        head = "";
        if (range === undefined) {
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${full.length}\r\n\r\n`);
          socket.write(full.subarray(0, half), () => socket.destroy());
        } else {
          const from = Number(range);
          socket.write(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes ${from}-${full.length - 1}/${full.length}\r\ncontent-length: ${full.length - from}\r\n\r\n`);
          socket.write(full.subarray(from));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const c = client();
      const ref = parseReference(`127.0.0.1:${port}/${big.repo}:${big.tag}`);
      const store = new BlobStore(join(root, "resume"));
      const d: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
      const opens: number[] = [];
      const r = await store.ensure(d, (offset, signal) => {
        opens.push(offset);
        return c.fetchBlob(ref, d, { offset, signal });
      }, { retryDelaysMs: [0] });
      expect(r.size).toBe(full.length);
      expect(opens).toHaveLength(2);
      expect(opens[0]).toBe(0);
      expect(opens[1]).toBeGreaterThan(0);
      expect(ranges).toEqual([undefined, String(opens[1])]);
      expect(digestOf(new Uint8Array(readFileSync(r.path)))).toBe(layer.digest);
    } finally {
      server.close();
    }
  });

  test("a server that ignores Range makes the download restart from 0", async () => {
    const layer = big.layers[0]!;
    const full = await blobBytes(reg, big.repo, layer.digest);
    const p = proxy(reg.url, (req, path) => {
      if (!path.includes("/blobs/")) return undefined;
      const h = new Headers(req.headers);
      h.delete("range");
      return forward(reg.url, req, h);
    });
    const store = new BlobStore(join(root, "norange"));
    const d: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
    // A partial download left behind by a killed process.
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(join(root, "norange", "ingest"), { recursive: true });
    writeFileSync(join(root, "norange", "ingest", `${layer.digest.slice(7)}.partial`), full.subarray(0, 1000));
    const c = client();
    const starts: number[] = [];
    const r = await store.ensure(d, async (offset, signal) => {
      const res = await c.fetchBlob(via(p.host, big), d, { offset, signal });
      starts.push(offset, res.offset);
      return res;
    });
    expect(starts).toEqual([1000, 0]);
    expect(r.fetched).toBe(full.length);
  });

  test("redirects to blob storage are followed, without the registry's credentials", async () => {
    const layer = oci.layers[0]!;
    const storageSaw: Array<string | null> = [];
    const storage = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        storageSaw.push(req.headers.get("authorization"));
        const digest = new URL(req.url).pathname.slice(1);
        return new Response(await blobBytes(reg, oci.repo, digest));
      },
    });
    try {
      // The front door wants Basic credentials and sends blobs elsewhere.
      const front = proxy(reg.url, (req, path) => {
        if (req.headers.get("authorization") !== `Basic ${Buffer.from("u:p").toString("base64")}`) {
          return new Response("{}", { status: 401, headers: { "www-authenticate": 'Basic realm="front"' } });
        }
        if (path.includes("/blobs/")) {
          return new Response(null, { status: 307, headers: { location: `http://127.0.0.1:${storage.port}/${path.split("/").at(-1)}` } });
        }
        const h = new Headers(req.headers);
        h.delete("authorization");
        return forward(reg.url, req, h);
      });
      const c = client({ mirrors: {}, configs: { [front.host]: { auth: { username: "u", password: "p" } } } });
      const ref = via(front.host, oci);
      const d: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
      const store = new BlobStore(join(root, "redirect"));
      const r = await store.ensure(d, (offset, signal) => c.fetchBlob(ref, d, { offset, signal }));
      expect(r.size).toBe(layer.size);
      expect(storageSaw).toEqual([null]);

      // An endless redirect loop is cut.
      const loop = proxy(reg.url, (_req, path) => new Response(null, { status: 302, headers: { location: path } }));
      const e = await rejection(client().fetchBlob(via(loop.host, oci), d));
      expect(e.kind).toBe("registry_unavailable");
      expect(e.message).toContain("more than 5 redirects");
    } finally {
      void storage.stop(true);
    }
  });

  test("5xx is retried with backoff; a lasting 5xx names the status", async () => {
    let failures = 0;
    const flaky = proxy(reg.url, (_req, path) => {
      if (path.includes("/manifests/") && failures < 2) {
        failures++;
        return new Response("busy", { status: 503 });
      }
      return undefined;
    });
    const r = await client().resolve(via(flaky.host, oci), AMD64);
    expect(r.manifestDigest).toBe(oci.digest);
    expect(failures).toBe(2);

    const broken = proxy(reg.url, () => new Response(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "disk on fire" }] }), { status: 500 }));
    const e = await rejection(client().resolve(via(broken.host, oci), AMD64));
    expect(e.kind).toBe("registry_unavailable");
    expect(e.message).toContain("HTTP 500");
    expect(e.message).toContain("disk on fire");
    expect(e.message).toContain(`${broken.host}/app:oci`);
    expect(broken.requests.length).toBe(1 + FAST_RETRIES.length);
  });

  test("a slow drip trips stall detection", async () => {
    const layer = big.layers[0]!;
    const full = await blobBytes(reg, big.repo, layer.digest);
    const drip = proxy(reg.url, (_req, path) => {
      if (!path.includes("/blobs/")) return undefined;
      let at = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          await Bun.sleep(10);
          if (at >= full.length) return c.close();
          c.enqueue(full.subarray(at, at + 16));
          at += 16;
        },
      });
      return new Response(body, { status: 200, headers: { "content-length": String(full.length) } });
    });
    const c = client();
    const d: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
    const store = new BlobStore(join(root, "stall"));
    const e = await rejection(
      store.ensure(d, (offset, signal) => c.fetchBlob(via(drip.host, big), d, { offset, signal }), {
        progressTimeoutMs: 200,
        minBytesPerSecond: 1_000_000,
      }),
    );
    expect(e.kind).toBe("deadline_exceeded");
    expect(e.message).toMatch(new RegExp(`^pull of ${layer.digest} stalled: \\d+ bytes in the last 0.2s`));
  });
});

describe("endpoints, challenges and credentials (pure)", () => {
  test("https unless http:// mirror or loopback; docker.io's API host; mirrors first", () => {
    const cfg: Registries = {
      mirrors: {
        "docker.io": { endpoint: ["http://mirror.local:5000", "https://m2.example/prefix/"] },
        "*": { endpoint: ["https://catchall.example"] },
      },
      configs: {
        "m2.example": { auth: { username: "u" }, tls: { insecureSkipVerify: true } },
        "docker.io": { auth: { username: "hub" } },
      },
    };
    const hub = endpointsFor("docker.io", cfg);
    expect(hub.map((e) => e.base)).toEqual(["http://mirror.local:5000/v2", "https://m2.example/prefix/v2", "https://registry-1.docker.io/v2"]);
    expect(hub.map((e) => e.mirror)).toEqual([true, true, false]);
    expect(hub[1]?.config?.tls?.insecureSkipVerify).toBe(true);
    expect(hub[2]?.config?.auth?.username).toBe("hub");
    expect(endpointsFor("quay.io", cfg).map((e) => e.base)).toEqual(["https://catchall.example/v2", "https://quay.io/v2"]);
    expect(endpointsFor("localhost:5000", noRegistries())[0]?.base).toBe("http://localhost:5000/v2");
    expect(endpointsFor("127.0.0.1:5000", noRegistries())[0]?.plainHttp).toBe(true);
    expect(endpointsFor("[::1]:5000", noRegistries())[0]?.base).toBe("http://[::1]:5000/v2");
    expect(endpointsFor("registry.example:5000", noRegistries())[0]?.base).toBe("https://registry.example:5000/v2");
    expect(isLoopbackHost("127.1.2.3:80")).toBe(true);
    expect(isLoopbackHost("127.example.com")).toBe(false);
  });

  test("WWW-Authenticate challenges", () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull" } },
    ]);
    // Two WWW-Authenticate headers arrive joined by ", ", as HTTP allows.
    expect(parseChallenges('Basic realm="x", Bearer realm="y", error="insufficient_scope"')).toEqual([
      { scheme: "basic", params: { realm: "x" } },
      { scheme: "bearer", params: { realm: "y", error: "insufficient_scope" } },
    ]);
    expect(parseChallenges('Basic realm="a, \\"b\\"", Bearer realm=tok')).toEqual([
      { scheme: "basic", params: { realm: 'a, "b"' } },
      { scheme: "bearer", params: { realm: "tok" } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });

  test("credentials: CRI fields, base64 auth, empty means none", () => {
    expect(toCredentials({ auth: Buffer.from("me:pa:ss").toString("base64") })).toEqual({ username: "me", password: "pa:ss" });
    expect(toCredentials({ username: "a", password: "b", auth: "ignored" })).toEqual({ username: "a", password: "b" });
    expect(toCredentials({ identityToken: "refresh" })).toEqual({ identityToken: "refresh" });
    expect(toCredentials({ registryToken: "t" })).toEqual({ registryToken: "t" });
    expect(toCredentials({ username: "", password: "", auth: "" })).toBeUndefined();
    expect(() => toCredentials({ auth: Buffer.from("nocolon").toString("base64") })).toThrow(/not base64 of/);
  });
});
