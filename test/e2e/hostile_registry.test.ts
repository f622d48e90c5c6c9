// Registries that never stop talking, against the compiled daemon: bodies with
// no end (a layer, a config, a manifest, a token answer, an error page). Each
// pull fails with a precise status, the daemon stops reading soon after the
// bound (the server counts what it managed to send), keeps no partial file,
// and its memory stays bounded. (Oversized and lying manifests, hostile tar
// entries, redirect loops and slow drips are covered in image_service.test.ts
// and registry_client.test.ts; bombs and full disks in disk_full.test.ts.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { criError } from "../helpers/cri.ts";
import { type CribInstance, startCrib } from "../helpers/daemon.ts";
import { sha256Digest, MEDIA_TYPES } from "../helpers/images.ts";
import { rssBytes } from "../helpers/leaks.ts";

const MiB = 1024 * 1024;
/** How far past a bound the daemon may have let the server write before it hung up (socket and HTTP buffers). */
const SLACK = 48 * MiB;

let crib: CribInstance;
let server: ReturnType<typeof Bun.serve>;
let host: string;
const sent = new Map<string, number>();

const enc = new TextEncoder();
/** An image config; `tag` makes each case's config a blob of its own. */
function imageConfig(tag: string): { bytes: Uint8Array; digest: string } {
  const bytes = enc.encode(JSON.stringify({ architecture: "amd64", os: "linux", config: { Labels: { case: tag } }, rootfs: { type: "layers", diff_ids: [sha256Digest(enc.encode("x"))] } }));
  return { bytes, digest: sha256Digest(bytes) };
}
const config = imageConfig("layer");
const endlessConfig = imageConfig("config");
const layerDigest = sha256Digest(enc.encode("the layer that never ends"));

function manifest(cfg: { digest: string; size: number }, layer: { digest: string; size: number }): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, ...cfg },
    layers: [{ mediaType: MEDIA_TYPES.ociLayer, ...layer }],
  });
}

/** A body that never ends (chunked, no length), counting what it manages to send under `key`. */
function endless(key: string, chunk: Uint8Array, init: ResponseInit = {}): Response {
  sent.set(key, 0);
  const stream = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      sent.set(key, (sent.get(key) ?? 0) + chunk.length);
      ctrl.enqueue(chunk);
    },
  });
  return new Response(stream, init);
}

const zeros = new Uint8Array(64 * 1024);
const spaces = new Uint8Array(64 * 1024).fill(0x20);

beforeAll(async () => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      const json = (body: string, type: string) => new Response(body, { headers: { "content-type": type } });
      if (path === "/v2/") return json("{}", "application/json");
      // A layer blob that never ends, for a 1 MiB descriptor.
      if (path === "/v2/endless/layer/manifests/1") return json(manifest({ digest: config.digest, size: config.bytes.length }, { digest: layerDigest, size: MiB }), MEDIA_TYPES.ociManifest);
      if (path === `/v2/endless/layer/blobs/${config.digest}`) return new Response(config.bytes);
      if (path === `/v2/endless/layer/blobs/${layerDigest}`) return endless("layer", zeros);
      // A config blob that never ends.
      if (path === "/v2/endless/config/manifests/1") return json(manifest({ digest: endlessConfig.digest, size: endlessConfig.bytes.length }, { digest: layerDigest, size: MiB }), MEDIA_TYPES.ociManifest);
      if (path === `/v2/endless/config/blobs/${endlessConfig.digest}`) return endless("config", spaces);
      // A manifest that never ends: an opening brace, then spaces forever.
      if (path === "/v2/endless/manifest/manifests/1") {
        sent.set("manifest", 0);
        let first = true;
        const stream = new ReadableStream<Uint8Array>({
          pull(ctrl) {
            const c = first ? enc.encode('{"schemaVersion":2,"pad":"') : spaces;
            first = false;
            sent.set("manifest", (sent.get("manifest") ?? 0) + c.length);
            ctrl.enqueue(c);
          },
        });
        return new Response(stream, { headers: { "content-type": MEDIA_TYPES.ociManifest } });
      }
      // A 404 whose error page never ends.
      if (path === "/v2/endless/error/manifests/1") return endless("error", spaces, { status: 404, headers: { "content-type": "application/json" } });
      // A registry whose token server answers forever.
      if (path.startsWith("/v2/endless/token/")) {
        if (req.headers.get("authorization")) return new Response("no", { status: 403 });
        return new Response("{}", { status: 401, headers: { "www-authenticate": `Bearer realm="http://${host}/token",service="endless"` } });
      }
      if (path === "/token") return endless("token", spaces, { headers: { "content-type": "application/json" } });
      return new Response("not found", { status: 404 });
    },
  });
  host = `127.0.0.1:${server.port}`;
  crib = await startCrib({ log: { level: "info" }, pull: { progressTimeout: "10s" } });
});

afterAll(async () => {
  if (crib) {
    if (process.env.SHOW_LOGS) console.log(crib.logs());
    if (crib.proc.exitCode === null) await crib.stop();
    crib.cleanup();
  }
  server?.stop(true);
});

const pull = (ref: string) => crib.client.call("ImageService", "PullImage", { image: { image: ref }, auth: null }, { timeoutMs: 120_000 });

/** No partial download and no half-unpacked layer stays. (Complete blobs of a failed pull stay for its retry, until the next gc.) */
async function expectStoreClean(): Promise<void> {
  const u = await crib.client.call("Crib", "StoreUsage", {});
  expect(u.orphan_layers).toEqual([]);
  expect(Number(u.ingest_bytes)).toBe(0);
}

describe("bodies that never end", () => {
  let rssBefore = 0;
  beforeAll(() => {
    rssBefore = rssBytes(crib.proc.pid);
  });

  test("a layer blob: refused as longer than its descriptor, download deleted", async () => {
    const err = await criError(pull(`${host}/endless/layer:1`));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(layerDigest);
    expect(err.details).toContain("longer than");
    expect(sent.get("layer")).toBeLessThan(MiB + SLACK);
    await expectStoreClean();
  });

  test("a config blob: refused the same way", async () => {
    const err = await criError(pull(`${host}/endless/config:1`));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(endlessConfig.digest);
    expect(sent.get("config")).toBeLessThan(endlessConfig.bytes.length + SLACK);
    await expectStoreClean();
  });

  test("a manifest: RESOURCE_EXHAUSTED at the manifest size limit", async () => {
    const err = await criError(pull(`${host}/endless/manifest:1`));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain("limit");
    expect(sent.get("manifest")).toBeLessThan(4 * MiB + SLACK);
  });

  test("an error page: NOT_FOUND, the page read only as far as its bound", async () => {
    const err = await criError(pull(`${host}/endless/error:1`));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(sent.get("error")).toBeLessThan(SLACK);
  });

  test("a token server's answer: refused at its size limit", async () => {
    const err = await criError(pull(`${host}/endless/token:1`));
    // A failing token server is the registry being unavailable: UNKNOWN "RegistryUnavailable: ..." for kubelets.
    expect([status.RESOURCE_EXHAUSTED, status.UNKNOWN, status.PERMISSION_DENIED]).toContain(err.code);
    expect(err.details).toContain(host);
    expect(sent.get("token")).toBeLessThan(MiB + SLACK);
  });

  test("the daemon is up and its memory did not follow the bodies", async () => {
    expect(crib.proc.exitCode).toBeNull();
    expect((await crib.client.call("RuntimeService", "Version", { version: "v1" })).runtime_name).toBe("crib");
    expect(rssBytes(crib.proc.pid) - rssBefore).toBeLessThan(128 * MiB);
  });
});
