// The shared image fixtures against real docker-registry instances: what the helpers
// push must read back byte-exact over the distribution API and be accepted by skopeo.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { busyboxLayer, MEDIA_TYPES, pushImage, pushIndex, randomLayer, sha256Digest, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry, type TokenRegistry } from "../helpers/registry.ts";
import { tarBytes } from "../helpers/tar.ts";

const ALL_MANIFEST_TYPES = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerManifestList,
].join(", ");

function basicHeader(user: string, pass: string): string {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
}

function challengeParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/([a-z_]+)="([^"]*)"/gi)) if (m[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  return out;
}

/** An independent minimal pull client: answers a Basic or Bearer challenge once per path. */
async function get(reg: StartedRegistry, path: string, accept?: string): Promise<Response> {
  const headers: Record<string, string> = accept === undefined ? {} : { Accept: accept };
  const first = await fetch(`${reg.url}${path}`, { headers });
  if (first.status !== 401 || reg.username === undefined || reg.password === undefined) return first;
  const challenge = first.headers.get("www-authenticate") ?? "";
  await first.arrayBuffer();
  if (/^basic /i.test(challenge)) {
    return await fetch(`${reg.url}${path}`, { headers: { ...headers, Authorization: basicHeader(reg.username, reg.password) } });
  }
  const p = challengeParams(challenge);
  const tokenUrl = new URL(p.realm ?? "");
  tokenUrl.searchParams.set("service", p.service ?? "");
  if (p.scope !== undefined) tokenUrl.searchParams.set("scope", p.scope);
  const tr = await fetch(tokenUrl, { headers: { Authorization: basicHeader(reg.username, reg.password) } });
  expect(tr.status).toBe(200);
  const { token } = (await tr.json()) as { token: string };
  return await fetch(`${reg.url}${path}`, { headers: { ...headers, Authorization: `Bearer ${token}` } });
}

/**
 * Runs `skopeo inspect` asynchronously: the token server lives in this process, so a
 * blocking spawn would deadlock skopeo's token request.
 */
async function skopeo(reg: StartedRegistry, args: string[]): Promise<unknown> {
  const creds = reg.username !== undefined && reg.password !== undefined ? ["--creds", `${reg.username}:${reg.password}`] : [];
  const proc = Bun.spawn(["skopeo", "inspect", "--tls-verify=false", ...creds, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`skopeo inspect ${args.join(" ")} failed (${code}): ${err}`);
  return JSON.parse(out);
}

/** Reads an image back: manifest by tag, config and every layer; checks digests and diffIDs. */
async function checkImage(reg: StartedRegistry, img: PushedImage): Promise<void> {
  const res = await get(reg, `/v2/${img.repo}/manifests/${img.tag}`, ALL_MANIFEST_TYPES);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe(img.manifestMediaType);
  expect(res.headers.get("docker-content-digest")).toBe(img.digest);
  const body = new Uint8Array(await res.arrayBuffer());
  expect(sha256Digest(body)).toBe(img.digest);
  const manifest = JSON.parse(new TextDecoder().decode(body)) as {
    mediaType: string;
    config: { digest: string; mediaType: string };
    layers: { digest: string; size: number; mediaType: string }[];
  };
  expect(manifest.mediaType).toBe(img.manifestMediaType);
  expect(manifest.config.digest).toBe(img.configDigest);

  const cfgRes = await get(reg, `/v2/${img.repo}/blobs/${img.configDigest}`);
  expect(cfgRes.status).toBe(200);
  const cfgBytes = new Uint8Array(await cfgRes.arrayBuffer());
  expect(sha256Digest(cfgBytes)).toBe(img.configDigest);
  const config = JSON.parse(new TextDecoder().decode(cfgBytes)) as { rootfs: { diff_ids: string[] }; os: string; architecture: string };
  expect(config.rootfs.diff_ids).toEqual(img.layers.map((l) => l.diffID));
  expect([config.os, config.architecture]).toEqual([img.platform.os, img.platform.architecture]);

  let total = body.length + cfgBytes.length;
  for (const [i, layer] of img.layers.entries()) {
    expect(manifest.layers[i]).toEqual({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size });
    const lr = await get(reg, `/v2/${img.repo}/blobs/${layer.digest}`);
    expect(lr.status).toBe(200);
    const blob = new Uint8Array(await lr.arrayBuffer());
    expect(blob.length).toBe(layer.size);
    expect(sha256Digest(blob)).toBe(layer.digest);
    const tar = layer.mediaType.endsWith("gzip")
      ? new Uint8Array(gunzipSync(blob))
      : layer.mediaType.endsWith("zstd")
        ? Bun.zstdDecompressSync(blob)
        : blob;
    expect(sha256Digest(tar)).toBe(layer.diffID);
    total += blob.length;
  }
  expect(total).toBe(img.size);
}

// Registries, compression and skopeo take seconds; give every test room (no timing assertion).
setDefaultTimeout(60_000);

const appLayer = [
  { type: "dir" as const, path: "app/" },
  { type: "file" as const, path: "app/hello.txt", data: "hello from crib\n" },
];
const appConfig = {
  Entrypoint: ["/bin/sh", "-c"],
  Cmd: ["cat /app/hello.txt"],
  Env: ["PATH=/bin", "GREETING=hi"],
  User: "1000:1000",
  WorkingDir: "/app",
  ExposedPorts: { "8080/tcp": {} },
  Labels: { "crib.test": "fixtures" },
};

for (const auth of [undefined, "basic", "token"] as const) {
  describe(`registry fixtures (${auth ?? "anonymous"})`, () => {
    let reg: StartedRegistry;
    beforeAll(async () => {
      reg = auth === undefined ? await startRegistry() : await startRegistry({ auth });
    });
    afterAll(async () => {
      await reg.stop();
    });

    test("an OCI gzip image reads back and skopeo accepts it", async () => {
      const img = await pushImage(reg, "fixtures/oci:v1", { layers: [busyboxLayer(), appLayer], config: appConfig });
      expect(img.ref).toBe(`${reg.host}/fixtures/oci:v1`);
      expect(img.manifestMediaType).toBe(MEDIA_TYPES.ociManifest);
      expect(img.layers.map((l) => l.mediaType)).toEqual([MEDIA_TYPES.ociLayerGzip, MEDIA_TYPES.ociLayerGzip]);
      await checkImage(reg, img);
      const info = await skopeo(reg, [`docker://${img.ref}`]) as { Digest: string; Layers: string[]; Env: string[]; Architecture: string };
      expect(info.Digest).toBe(img.digest);
      expect(info.Layers).toEqual(img.layers.map((l) => l.digest));
      expect(info.Env).toEqual(appConfig.Env);
      expect(info.Architecture).toBe("amd64");
      // Same input, same digest: fixtures are reproducible.
      const again = await pushImage(reg, "fixtures/oci:v1-again", { layers: [busyboxLayer(), appLayer], config: appConfig });
      expect(again.digest).toBe(img.digest);
    });

    test("a docker schema 2 image reads back and skopeo accepts it", async () => {
      const img = await pushImage(reg, "fixtures/docker:v1", { format: "docker", layers: [busyboxLayer()], config: { Cmd: ["sh"] } });
      expect(img.manifestMediaType).toBe(MEDIA_TYPES.dockerManifest);
      expect(img.layers[0]?.mediaType).toBe(MEDIA_TYPES.dockerLayerGzip);
      await checkImage(reg, img);
      const raw = await skopeo(reg, ["--raw", `docker://${img.ref}`]) as { mediaType: string; config: { mediaType: string } };
      expect(raw.mediaType).toBe(MEDIA_TYPES.dockerManifest);
      expect(raw.config.mediaType).toBe(MEDIA_TYPES.dockerConfig);
      const info = await skopeo(reg, [`docker://${img.ref}`]) as { Digest: string };
      expect(info.Digest).toBe(img.digest);
    });

    test("a zstd image reads back and skopeo accepts it; docker format refuses zstd", async () => {
      const img = await pushImage(reg, "fixtures/zstd:v1", { compression: "zstd", layers: [busyboxLayer(), appLayer] });
      expect(img.layers.map((l) => l.mediaType)).toEqual([MEDIA_TYPES.ociLayerZstd, MEDIA_TYPES.ociLayerZstd]);
      await checkImage(reg, img);
      const info = await skopeo(reg, [`docker://${img.ref}`]) as { Digest: string; Layers: string[] };
      expect(info.Digest).toBe(img.digest);
      expect(info.Layers).toEqual(img.layers.map((l) => l.digest));
      const raw = await skopeo(reg, ["--raw", `docker://${img.ref}`]) as { layers: { mediaType: string }[] };
      expect(raw.layers.map((l) => l.mediaType)).toEqual([MEDIA_TYPES.ociLayerZstd, MEDIA_TYPES.ociLayerZstd]);
      await expect(pushImage(reg, "fixtures/zstd:docker", { format: "docker", compression: "zstd", layers: [appLayer] })).rejects.toThrow(/zstd/);
      const plain = await pushImage(reg, "fixtures/plain:v1", { compression: "none", layers: [appLayer] });
      expect(plain.layers[0]?.mediaType).toBe(MEDIA_TYPES.ociLayer);
      await checkImage(reg, plain);
    });

    test("a 2-platform index reads back and skopeo picks each platform", async () => {
      const amd = await pushImage(reg, "fixtures/multi:amd64", { layers: [busyboxLayer(), appLayer] });
      // Different content per platform, and pushed to another repo: pushIndex copies it over.
      const arm = await pushImage(reg, "fixtures/multi-src:arm64", {
        architecture: "arm64",
        variant: "v8",
        layers: [busyboxLayer(), [{ type: "file", path: "arch", data: "arm64\n" }]],
      });
      const index = await pushIndex(reg, "fixtures/multi:latest", [amd, arm]);
      expect(index.ref).toBe(`${reg.host}/fixtures/multi:latest`);
      const res = await get(reg, "/v2/fixtures/multi/manifests/latest", ALL_MANIFEST_TYPES);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(MEDIA_TYPES.ociIndex);
      const body = new Uint8Array(await res.arrayBuffer());
      expect(sha256Digest(body)).toBe(index.digest);
      const parsed = JSON.parse(new TextDecoder().decode(body)) as { manifests: { digest: string; platform: { architecture: string; variant?: string } }[] };
      expect(parsed.manifests.map((m) => [m.digest, m.platform.architecture, m.platform.variant])).toEqual([
        [amd.digest, "amd64", undefined],
        [arm.digest, "arm64", "v8"],
      ]);
      // The arm64 manifest is reachable by digest in the index's repository.
      const byDigest = await get(reg, `/v2/fixtures/multi/manifests/${arm.digest}`, ALL_MANIFEST_TYPES);
      expect(byDigest.status).toBe(200);
      expect(sha256Digest(new Uint8Array(await byDigest.arrayBuffer()))).toBe(arm.digest);

      const raw = await skopeo(reg, ["--raw", `docker://${index.ref}`]) as { mediaType: string; manifests: unknown[] };
      expect(raw.mediaType).toBe(MEDIA_TYPES.ociIndex);
      expect(raw.manifests.length).toBe(2);
      // skopeo 1.9 reports the index digest as Digest, and the chosen instance's arch and layers.
      type Info = { Digest: string; Architecture: string; Layers: string[] };
      const armInfo = await skopeo(reg, ["--override-arch", "arm64", "--override-variant", "v8", `docker://${index.ref}`]) as Info;
      expect([armInfo.Architecture, armInfo.Layers]).toEqual(["arm64", arm.layers.map((l) => l.digest)]);
      const amdInfo = await skopeo(reg, ["--override-arch", "amd64", `docker://${index.ref}`]) as Info;
      expect([amdInfo.Architecture, amdInfo.Layers]).toEqual(["amd64", amd.layers.map((l) => l.digest)]);

      // And the docker flavour: a manifest list over docker manifests.
      const damd = await pushImage(reg, "fixtures/dlist:amd64", { format: "docker", layers: [appLayer] });
      const darm = await pushImage(reg, "fixtures/dlist:arm64", { format: "docker", architecture: "arm64", layers: [appLayer] });
      const list = await pushIndex(reg, "fixtures/dlist:latest", [damd, darm], { format: "docker" });
      const rawList = await skopeo(reg, ["--raw", `docker://${list.ref}`]) as { mediaType: string };
      expect(rawList.mediaType).toBe(MEDIA_TYPES.dockerManifestList);
      const darmInfo = await skopeo(reg, ["--override-arch", "arm64", `docker://${list.ref}`]) as Info;
      expect([darmInfo.Digest, darmInfo.Architecture]).toEqual([list.digest, "arm64"]);
    });

    if (auth === "basic") {
      test("anonymous requests get a Basic challenge", async () => {
        const res = await fetch(`${reg.url}/v2/fixtures/oci/manifests/v1`);
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate") ?? "").toMatch(/^Basic realm=/);
        const wrong = await fetch(`${reg.url}/v2/`, { headers: { Authorization: basicHeader(reg.username ?? "", "wrong") } });
        expect(wrong.status).toBe(401);
      });
    }

    if (auth === "token") {
      test("anonymous pulls get a Bearer challenge; only a token with credentials opens it", async () => {
        const treg = reg as TokenRegistry;
        const res = await fetch(`${reg.url}/v2/fixtures/oci/manifests/v1`, { headers: { Accept: ALL_MANIFEST_TYPES } });
        expect(res.status).toBe(401);
        const challenge = res.headers.get("www-authenticate") ?? "";
        expect(challenge).toMatch(/^Bearer /);
        const p = challengeParams(challenge);
        expect(p.realm).toBe(treg.realm);
        expect(p.service).toBe(treg.service);
        expect(p.scope).toBe("repository:fixtures/oci:pull");

        const before = treg.tokenRequests();
        const tokenUrl = `${p.realm}?service=${encodeURIComponent(p.service ?? "")}&scope=${encodeURIComponent(p.scope ?? "")}`;
        expect((await fetch(tokenUrl)).status).toBe(401);
        expect((await fetch(tokenUrl, { headers: { Authorization: basicHeader(treg.username, "wrong") } })).status).toBe(401);
        const ok = await fetch(tokenUrl, { headers: { Authorization: basicHeader(treg.username, treg.password) } });
        expect(ok.status).toBe(200);
        const { token, access_token, expires_in } = (await ok.json()) as { token: string; access_token: string; expires_in: number };
        expect(access_token).toBe(token);
        expect(expires_in).toBeGreaterThan(0);
        expect(treg.tokenRequests()).toBe(before + 3);
        expect(treg.tokenRequestLog().slice(-3).map((r) => r.status)).toEqual([401, 401, 200]);
        expect(treg.tokenRequestLog().at(-1)?.scopes).toEqual(["repository:fixtures/oci:pull"]);

        const authed = await fetch(`${reg.url}/v2/fixtures/oci/manifests/v1`, {
          headers: { Accept: ALL_MANIFEST_TYPES, Authorization: `Bearer ${token}` },
        });
        expect(authed.status).toBe(200);
        await authed.arrayBuffer();
        // A pull token does not open another repository.
        const other = await fetch(`${reg.url}/v2/fixtures/docker/manifests/v1`, {
          headers: { Accept: ALL_MANIFEST_TYPES, Authorization: `Bearer ${token}` },
        });
        expect(other.status).toBe(401);
        await other.arrayBuffer();

        // The OAuth2 form POST gives a working token too.
        const form = new URLSearchParams({ grant_type: "password", username: treg.username, password: treg.password, service: treg.service, scope: p.scope ?? "", client_id: "crib-test" });
        const posted = await fetch(treg.realm, { method: "POST", body: form });
        expect(posted.status).toBe(200);
        const { access_token: postedToken } = (await posted.json()) as { access_token: string };
        const viaPost = await fetch(`${reg.url}/v2/fixtures/oci/manifests/v1`, { method: "HEAD", headers: { Accept: ALL_MANIFEST_TYPES, Authorization: `Bearer ${postedToken}` } });
        expect(viaPost.status).toBe(200);
      });
    }
  });
}

describe("registry lifecycle", () => {
  test("stop() kills the registry and removes its dir", async () => {
    const reg = await startRegistry();
    expect((await fetch(`${reg.url}/v2/`)).status).toBe(200);
    await reg.stop();
    expect(await Bun.file(`${reg.dir}/config.yml`).exists()).toBe(false);
    await expect(fetch(`${reg.url}/v2/`)).rejects.toThrow();
    await reg.stop(); // idempotent
  });
});

describe("layer builders", () => {
  test("busyboxLayer holds busybox, its applets, and the users tests rely on", () => {
    const entries = busyboxLayer({ extraUsers: "web:x:33:33::/var/www:/bin/sh" });
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const bb = byPath.get("bin/busybox");
    expect(bb?.type).toBe("file");
    for (const applet of ["sh", "ls", "cat", "echo", "sleep", "id", "env", "true", "false", "httpd", "wget", "mkdir", "touch", "head", "grep", "seq"]) {
      expect(byPath.get(`bin/${applet}`)).toEqual({ type: "hardlink", path: `bin/${applet}`, target: "bin/busybox" });
    }
    const tmp = byPath.get("tmp/");
    expect(tmp?.type === "dir" ? tmp.mode : undefined).toBe(0o1777);
    const passwd = byPath.get("etc/passwd");
    const passwdText = passwd?.type === "file" ? String(passwd.data) : "";
    expect(passwdText).toContain("root:x:0:0:");
    expect(passwdText).toContain("nobody:x:65534:65534:");
    expect(passwdText).toContain("app:x:1000:1000:");
    expect(passwdText).toEndWith("web:x:33:33::/var/www:/bin/sh\n");
    const group = byPath.get("etc/group");
    expect(group?.type === "file" ? String(group.data) : "").toContain("extra:x:2000:app\n");
  });

  test("the busybox layer unpacks with GNU tar into a root where the applets and users work", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crib-busybox-root-"));
    try {
      writeFileSync(join(dir, "layer.tar"), tarBytes(busyboxLayer()));
      mkdirSync(join(dir, "root"));
      const untar = Bun.spawnSync(["tar", "-xpf", join(dir, "layer.tar"), "-C", join(dir, "root")]);
      expect(untar.exitCode).toBe(0);
      const run = Bun.spawn(["chroot", join(dir, "root"), "/bin/sh", "-c", "id app; /bin/id -G app; ls -d /tmp; echo ok"], { stdout: "pipe", stderr: "pipe" });
      const [out, code] = await Promise.all([new Response(run.stdout).text(), run.exited]);
      expect(code).toBe(0);
      expect(out).toContain("uid=1000(app) gid=1000(app)");
      expect(out).toContain("1000 2000");
      expect(out).toEndWith("/tmp\nok\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("randomLayer is seeded, sized and incompressible", () => {
    const a = tarBytes(randomLayer(5 * 1024 * 1024 + 3, 7));
    const b = tarBytes(randomLayer(5 * 1024 * 1024 + 3, 7));
    const c = tarBytes(randomLayer(5 * 1024 * 1024 + 3, 8));
    expect(sha256Digest(a)).toBe(sha256Digest(b));
    expect(sha256Digest(a)).not.toBe(sha256Digest(c));
    const files = randomLayer(5 * 1024 * 1024 + 3, 7).filter((e) => e.type === "file");
    expect(files.reduce((n, e) => n + (e.type === "file" && e.data instanceof Uint8Array ? e.data.length : 0), 0)).toBe(5 * 1024 * 1024 + 3);
    expect(Bun.gzipSync(a).length).toBeGreaterThan(a.length * 0.99);
  });
});
