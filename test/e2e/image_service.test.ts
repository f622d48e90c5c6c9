// The ImageService of the compiled daemon against real registries.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { criError } from "../helpers/cri.ts";
import { type CribInstance, runCrib, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, pushIndex, randomLayer, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry, type TokenRegistry } from "../helpers/registry.ts";

let reg: StartedRegistry;
let tokenReg: TokenRegistry;
let crib: CribInstance;
let oci: PushedImage;
let docker: PushedImage;
let zstd: PushedImage;
let app: PushedImage;
const cleanups: (() => Promise<unknown> | void)[] = [];


const pull = (c: CribInstance, image: string, auth?: { username: string; password: string }) =>
  c.client.call("ImageService", "PullImage", { image: { image }, auth: auth ?? null }, { timeoutMs: 120_000 });

beforeAll(async () => {
  reg = await startRegistry();
  tokenReg = await startRegistry({ auth: "token" });
  cleanups.push(() => reg.stop(), () => tokenReg.stop());
  oci = await pushImage(reg, "test/busybox:oci", { layers: [busyboxLayer()], config: { User: "app", Cmd: ["sh"] } });
  docker = await pushImage(reg, "test/busybox:docker", { format: "docker", layers: [busyboxLayer()], config: { User: "1000:1000" } });
  zstd = await pushImage(reg, "test/busybox:zstd", { compression: "zstd", layers: [busyboxLayer(), [{ type: "file", path: "etc/zstd-was-here", data: "yes\n" }]] });
  app = await pushImage(reg, "test/app:v1", { layers: [busyboxLayer(), randomLayer(256 * 1024, 7)] });
  crib = await startCrib({ pull: { progressTimeout: "10s" } });
  cleanups.push(async () => {
    if (crib.proc.exitCode === null) await crib.stop();
    crib.cleanup();
  });
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("PullImage / ImageStatus / ListImages", () => {
  test("an OCI image: id is the config digest, tags and digests recorded, user reported", async () => {
    const res = await pull(crib, oci.ref);
    expect(res.image_ref).toBe(oci.configDigest);
    const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: oci.ref }, verbose: true });
    expect(st.image?.id).toBe(oci.configDigest);
    expect(st.image?.repo_tags).toEqual([oci.ref]);
    expect(st.image?.repo_digests).toEqual([`${reg.host}/test/busybox@${oci.digest}`]);
    expect(Number(st.image?.size)).toBe(oci.size);
    expect(st.image?.username).toBe("app");
    expect(st.image?.uid).toBeNull();
    const info = JSON.parse(st.info.info!) as { imageSpec: { config: { Cmd: string[] } }; layers: { chainID: string }[] };
    expect(info.imageSpec.config.Cmd).toEqual(["sh"]);
    // The layer is unpacked under its chain ID.
    const layerDir = join(crib.root, "layers", info.layers[0]!.chainID.slice(7));
    expect(existsSync(join(layerDir, "bin/busybox"))).toBe(true);
  });

  test("the same image answers to its id, short id, tag and digest", async () => {
    for (const name of [oci.configDigest, oci.configDigest.slice(7), oci.configDigest.slice(7, 19), `${reg.host}/test/busybox@${oci.digest}`]) {
      const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: name }, verbose: false });
      expect(st.image?.id).toBe(oci.configDigest);
    }
  });

  test("an absent image has no status (not an error), as the kubelet expects", async () => {
    const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: `${reg.host}/nope:1` }, verbose: false });
    expect(st.image).toBeNull();
  });

  test("a Docker schema 2 image, uid from the config", async () => {
    await pull(crib, docker.ref);
    const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: docker.ref }, verbose: false });
    expect(st.image?.uid?.value).toBe(1000n);
    expect(st.image?.username).toBe("");
  });

  test("a zstd image unpacks", async () => {
    await pull(crib, zstd.ref);
    const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: zstd.ref }, verbose: true });
    const info = JSON.parse(st.info.info!) as { layers: { chainID: string }[] };
    expect(readFileSync(join(crib.root, "layers", info.layers[1]!.chainID.slice(7), "etc/zstd-was-here"), "utf8")).toBe("yes\n");
  });

  test("by digest, and by tag+digest", async () => {
    const byDigest = await pull(crib, `${reg.host}/test/app@${app.digest}`);
    expect(byDigest.image_ref).toBe(app.configDigest);
    const both = await pull(crib, `${app.ref}@${app.digest}`);
    expect(both.image_ref).toBe(app.configDigest);
  });

  test("a multi-arch index: the configured platform is chosen", async () => {
    const amd = await pushImage(reg, "test/multi:amd64", { layers: [busyboxLayer()], architecture: "amd64", config: { Env: ["ARCH=amd64"] } });
    const arm = await pushImage(reg, "test/multi:arm64", { layers: [busyboxLayer()], architecture: "arm64", variant: "v8", config: { Env: ["ARCH=arm64"] } });
    const idx = await pushIndex(reg, "test/multi:latest", [amd, arm]);
    const res = await pull(crib, idx.ref);
    expect(res.image_ref).toBe(amd.configDigest);
    const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: idx.ref }, verbose: false });
    expect(st.image?.repo_digests).toEqual([`${reg.host}/test/multi@${idx.digest}`]);

    const armCrib = await startCrib({ pull: { platform: { os: "linux", architecture: "arm64", variant: "v8" } } });
    try {
      const r = await pull(armCrib, idx.ref);
      expect(r.image_ref).toBe(arm.configDigest);
    } finally {
      await armCrib.stop();
      armCrib.cleanup();
    }
  });

  test("ListImages lists every image and filters by name", async () => {
    const all = await crib.client.call("ImageService", "ListImages", { filter: null });
    const ids = all.images.map((i) => i.id);
    expect(ids).toContain(oci.configDigest);
    expect(ids).toContain(docker.configDigest);
    const one = await crib.client.call("ImageService", "ListImages", { filter: { image: { image: docker.ref } } });
    expect(one.images.map((i) => i.id)).toEqual([docker.configDigest]);
    const streamed: string[] = [];
    await crib.client.stream("ImageService", "StreamImages", { filter: null }, (m) => streamed.push(...m.images.map((i) => i.id)));
    expect(streamed.sort()).toEqual([...ids].sort());
  });

  test("five concurrent pulls of one image share the work and agree", async () => {
    const img = await pushImage(reg, "test/concurrent:1", { layers: [busyboxLayer(), randomLayer(2 * 1024 * 1024, 11)] });
    const results = await Promise.all(Array.from({ length: 5 }, () => pull(crib, img.ref)));
    expect(new Set(results.map((r) => r.image_ref))).toEqual(new Set([img.configDigest]));
    const usage = await crib.client.call("Crib", "StoreUsage", {});
    expect(usage.orphan_blobs).toEqual([]);
    expect(usage.orphan_layers).toEqual([]);
  });

  test("bad requests get precise errors", async () => {
    expect((await criError(pull(crib, ""))).code).toBe(status.INVALID_ARGUMENT);
    const bad = await criError(pull(crib, "library/UPPER:tag"));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toContain("library/UPPER:tag");
    const missing = await criError(pull(crib, `${reg.host}/test/busybox:nope`));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain("test/busybox");
    const st = await criError(crib.client.call("ImageService", "ImageStatus", { image: { image: "" }, verbose: false }));
    expect(st.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("registry auth and mirrors", () => {
  test("a token registry: anonymous refused, CRI AuthConfig works, tokens are cached", async () => {
    const img = await pushImage(tokenReg, "secure/app:1", { layers: [busyboxLayer()] });
    const denied = await criError(pull(crib, img.ref));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toContain(tokenReg.host);
    const before = tokenReg.tokenRequests();
    const res = await pull(crib, img.ref, { username: tokenReg.username, password: tokenReg.password });
    expect(res.image_ref).toBe(img.configDigest);
    // One token for the repository's pull scope, reused for manifest and blobs.
    expect(tokenReg.tokenRequests() - before).toBeLessThanOrEqual(2);
  });

  test("credentials from the config file", async () => {
    const img = await pushImage(tokenReg, "secure/cfg:1", { layers: [busyboxLayer()] });
    const c = await startCrib({ registries: { configs: { [tokenReg.host]: { auth: { username: tokenReg.username, password: tokenReg.password } } } } });
    try {
      expect((await pull(c, img.ref)).image_ref).toBe(img.configDigest);
      expect(c.logs()).not.toContain(tokenReg.password);
      // Nor does Status verbose (crictl info, kubeadm) show it.
      const st = await c.client.call("RuntimeService", "Status", { verbose: true });
      expect(st.info.config).not.toContain(tokenReg.password);
      expect(st.info.config).toContain("<redacted>");
    } finally {
      await c.stop();
      c.cleanup();
    }
  });

  test("a mirror is tried first; a dead mirror falls back to upstream", async () => {
    const upstream = await startRegistry();
    const mirror = await startRegistry();
    try {
      const onlyOnMirror = await pushImage(mirror, "m/app:1", { layers: [busyboxLayer()] });
      const onBoth = await pushImage(upstream, "m/both:1", { layers: [busyboxLayer()] });
      const c = await startCrib({ registries: { mirrors: { [upstream.host]: { endpoint: ["http://127.0.0.1:1", mirror.url] } } } });
      try {
        expect((await pull(c, `${upstream.host}/m/app:1`)).image_ref).toBe(onlyOnMirror.configDigest);
        expect((await pull(c, `${upstream.host}/m/both:1`)).image_ref).toBe(onBoth.configDigest);
      } finally {
        await c.stop();
        c.cleanup();
      }
    } finally {
      await upstream.stop();
      await mirror.stop();
    }
  });
});

describe("RemoveImage, ImageFsInfo and store usage", () => {
  test("removal deletes blobs and layers no other image holds, and is idempotent", async () => {
    const c = await startCrib();
    try {
      const a = await pushImage(reg, "rm/a:1", { layers: [busyboxLayer(), randomLayer(64 * 1024, 1)] });
      const b = await pushImage(reg, "rm/b:1", { layers: [busyboxLayer(), randomLayer(64 * 1024, 2)] });
      await pull(c, a.ref);
      await pull(c, b.ref);
      const fs1 = await c.client.call("ImageService", "ImageFsInfo", {});
      const used1 = fs1.image_filesystems[0]!.used_bytes!.value;
      expect(used1).toBeGreaterThan(0n);
      expect(fs1.image_filesystems[0]!.fs_id!.mountpoint).toBe(c.root);

      await c.client.call("ImageService", "RemoveImage", { image: { image: a.ref } });
      expect((await c.client.call("ImageService", "ImageStatus", { image: { image: a.ref }, verbose: false })).image).toBeNull();
      // b still pulls nothing new and its shared busybox layer is intact.
      const st = await c.client.call("ImageService", "ImageStatus", { image: { image: b.ref }, verbose: true });
      const layers = (JSON.parse(st.info.info!) as { layers: { chainID: string }[] }).layers;
      expect(existsSync(join(c.root, "layers", layers[0]!.chainID.slice(7), "bin/busybox"))).toBe(true);
      const fs2 = await c.client.call("ImageService", "ImageFsInfo", {});
      expect(fs2.image_filesystems[0]!.used_bytes!.value).toBeLessThan(used1);

      // Idempotent.
      await c.client.call("ImageService", "RemoveImage", { image: { image: a.ref } });
      await c.client.call("ImageService", "RemoveImage", { image: { image: b.configDigest } });
      const u = await c.client.call("Crib", "StoreUsage", {});
      expect(Number(u.images)).toBe(0);
      expect(Number(u.blob_count)).toBe(0);
      expect(Number(u.layer_count)).toBe(0);
      expect(readdirSync(join(c.root, "layers"))).toEqual([]);
    } finally {
      await c.stop();
      c.cleanup();
    }
  });
});

describe("hostile images and registries", () => {
  test("a layer entry that climbs out fails the pull naming the entry; nothing lands outside", async () => {
    const evil = await pushImage(reg, "evil/dotdot:1", { layers: [busyboxLayer(), [{ type: "file", path: "../../escape-dotdot", data: "x" }]] });
    const err = await criError(pull(crib, evil.ref));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("../../escape-dotdot");
    const viaLink = await pushImage(reg, "evil/symlink:1", { layers: [[{ type: "symlink", path: "a", target: "/" }, { type: "file", path: "a/tmp/escape-symlink", data: "x" }]] });
    const err2 = await criError(pull(crib, viaLink.ref));
    expect(err2.code).toBe(status.INVALID_ARGUMENT);
    expect(err2.details).toContain("a/tmp/escape-symlink");
    expect(existsSync("/tmp/escape-symlink")).toBe(false);
    expect(existsSync(join(crib.root, "escape-dotdot"))).toBe(false);
    expect(existsSync(join(crib.dir, "escape-dotdot"))).toBe(false);
    // Nothing half-unpacked stays behind.
    expect(readdirSync(join(crib.root, "layers")).filter((n) => n.endsWith(".unpacking"))).toEqual([]);
  });

  test("hostile manifests: schema 1, oversized, wrong digest", async () => {
    const huge = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", pad: "x".repeat(5 * 1024 * 1024) });
    const schema1 = JSON.stringify({ schemaVersion: 1, name: "evil/s1", tag: "1", fsLayers: [], history: [] });
    const fake = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (path === "/v2/") return new Response("{}", { headers: { "content-type": "application/json" } });
        if (path === "/v2/evil/s1/manifests/1") return new Response(schema1, { headers: { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" } });
        if (path === "/v2/evil/huge/manifests/1") return new Response(huge, { headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
        if (path.startsWith("/v2/evil/liar/manifests/")) return new Response(oci.manifestBytes, { headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
        return new Response("not found", { status: 404 });
      },
    });
    try {
      const host = `127.0.0.1:${fake.port}`;
      const s1 = await criError(pull(crib, `${host}/evil/s1:1`));
      expect(s1.code).toBe(status.FAILED_PRECONDITION);
      expect(s1.details.toLowerCase()).toContain("schema 1");
      const big = await criError(pull(crib, `${host}/evil/huge:1`));
      expect(big.code).toBe(status.RESOURCE_EXHAUSTED);
      const wrong = `sha256:${"0".repeat(64)}`;
      const liar = await criError(pull(crib, `${host}/evil/liar@${wrong}`));
      expect(liar.code).toBe(status.FAILED_PRECONDITION);
      expect(liar.details).toContain(wrong);
    } finally {
      fake.stop(true);
    }
  });
});

describe("crash safety", () => {
  test("kill -9 in the middle of a pull leaves no corrupt blob; the next pull completes", async () => {
    const big = await pushImage(reg, "crash/big:1", { layers: [busyboxLayer(), randomLayer(24 * 1024 * 1024, 3), randomLayer(24 * 1024 * 1024, 4)] });
    // A proxy that trickles blob bodies, so the kill lands mid-download.
    const proxy = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        const upstream = await fetch(`${reg.url}${url.pathname}${url.search}`, { method: req.method, headers: req.headers, redirect: "manual" });
        if (!url.pathname.includes("/blobs/") || !upstream.body) return upstream;
        const reader = upstream.body.getReader();
        const slow = new ReadableStream<Uint8Array>({
          async pull(ctrl) {
            const { done, value } = await reader.read();
            if (done) return ctrl.close();
            await Bun.sleep(5);
            ctrl.enqueue(value);
          },
        });
        return new Response(slow, { status: upstream.status, headers: upstream.headers });
      },
    });
    const host = `127.0.0.1:${proxy.port}`;
    const c = await startCrib({ pull: { progressTimeout: "30s" } });
    try {
      const ref = `${host}/crash/big:1`;
      const pending = pull(c, ref).catch((e: unknown) => e);
      // Wait until bytes are on disk in ingest/, then kill.
      const ingest = join(c.root, "ingest");
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && !(existsSync(ingest) && readdirSync(ingest).length > 0)) await Bun.sleep(20);
      await Bun.sleep(200);
      await c.kill();
      await pending;

      // Every blob with a name is complete and verified.
      const blobDir = join(c.root, "blobs", "sha256");
      for (const hex of existsSync(blobDir) ? readdirSync(blobDir) : []) {
        expect(createHash("sha256").update(readFileSync(join(blobDir, hex))).digest("hex")).toBe(hex);
      }
      const again = await startCrib({}, c);
      try {
        expect((await pull(again, ref)).image_ref).toBe(big.configDigest);
        const u = await again.client.call("Crib", "StoreUsage", {});
        expect(u.orphan_blobs).toEqual([]);
        expect(u.orphan_layers).toEqual([]);
      } finally {
        await again.stop();
      }
    } finally {
      if (c.proc.exitCode === null) await c.kill();
      c.cleanup();
      proxy.stop(true);
    }
  });
});

describe("crib ctl image commands", () => {
  test("pull shows per-layer progress and a summary; images, inspecti, rmi, store", async () => {
    const img = await pushImage(reg, "ctl/app:1", { layers: [busyboxLayer(), randomLayer(1024 * 1024, 9)] });
    const ep = `unix://${crib.socket}`;
    const p = await runCrib(["ctl", "-r", ep, "pull", img.ref]);
    expect(p.stderr).toBe("");
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`Image is up to date for ${img.configDigest}`);
    expect(p.stdout).toMatch(/2 layers, .* in [\d.]+s/);
    expect(p.stdout).toContain(img.layers[1]!.digest.slice(7, 20));

    const list = await runCrib(["ctl", "-r", ep, "images"]);
    expect(list.stdout).toMatch(/^IMAGE\s+TAG\s+IMAGE ID\s+SIZE/);
    expect(list.stdout).toContain(`${reg.host}/ctl/app`);

    const insp = await runCrib(["ctl", "-r", ep, "inspecti", img.ref]);
    const doc = JSON.parse(insp.stdout) as { status: { id: string }; info: { manifestDigest: string } };
    expect(doc.status.id).toBe(img.configDigest);
    expect(doc.info.manifestDigest).toBe(img.digest);

    const store = await runCrib(["ctl", "-r", ep, "store"]);
    expect(store.stdout).toMatch(/blobs\s+\d+/);

    const rm = await runCrib(["ctl", "-r", ep, "rmi", img.ref]);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toContain(`Deleted: ${img.ref}`);
    const gone = await runCrib(["ctl", "-r", ep, "inspecti", img.ref]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("no such image");
  });
});
