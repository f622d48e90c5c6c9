// Air-gapped nodes: crib ctl load / save / pin / unpin against the compiled
// daemon, with archives made by skopeo from a real registry.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { criError } from "../helpers/cri.ts";
import { type CribInstance, runCrib, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tarBytes } from "../helpers/tar.ts";
import { tempDir } from "../helpers/tmp.ts";

let reg: StartedRegistry;
let oci: PushedImage;
let dock: PushedImage;
let a: CribInstance;
let dir: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

function sh(args: string[]): string {
  const r = Bun.spawnSync(args, { stderr: "pipe", stdout: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${args.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const skopeo = (src: string, dest: string) => sh(["skopeo", "copy", "--quiet", "--src-tls-verify=false", `docker://${src}`, dest]);

const load = (c: CribInstance, path: string) => c.client.call("Crib", "LoadImages", { path }, { timeoutMs: 120_000 });
const statusOf = async (c: CribInstance, image: string) => (await c.client.call("ImageService", "ImageStatus", { image: { image }, verbose: true }));
const ctl = (c: CribInstance, ...args: string[]) => runCrib(["ctl", "-r", `unix://${c.socket}`, ...args], { timeoutMs: 120_000 });

/** No staging dir of a load is left in the store's ingest dir. */
function noLoadLeftovers(c: CribInstance): void {
  const ingest = join(c.root, "ingest");
  const left = existsSync(ingest) ? readdirSync(ingest).filter((n) => n.startsWith("load-")) : [];
  expect(left).toEqual([]);
}

beforeAll(async () => {
  reg = await startRegistry();
  cleanups.push(() => reg.stop());
  oci = await pushImage(reg, "test/busybox:oci", { layers: [busyboxLayer(), [{ type: "file", path: "etc/oci", data: "oci\n" }]] });
  dock = await pushImage(reg, "test/app:docker", { format: "docker", layers: [busyboxLayer(), [{ type: "file", path: "etc/docker", data: "docker\n" }]] });
  dir = tempDir("crib-archives-");
  skopeo(oci.ref, `oci-archive:${join(dir, "oci.tar")}:${oci.ref}`);
  skopeo(dock.ref, `docker-archive:${join(dir, "docker.tar")}:${dock.ref}`);
  writeFileSync(join(dir, "oci.tar.gz"), Bun.gzipSync(readFileSync(join(dir, "oci.tar"))));
  writeFileSync(join(dir, "docker.tar.zst"), Bun.zstdCompressSync(readFileSync(join(dir, "docker.tar"))));
  a = await startCrib();
  cleanups.push(async () => {
    if (a.proc.exitCode === null) await a.stop();
    a.cleanup();
  });
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("crib ctl load", () => {
  test("an OCI archive made by skopeo: id, tag and repo digest as a pull records them", async () => {
    const res = await load(a, join(dir, "oci.tar"));
    expect(res.format).toBe("oci");
    expect(res.images.map((i) => i.id)).toEqual([oci.configDigest]);
    expect(res.images[0]!.repo_tags).toEqual([oci.ref]);
    expect(res.images[0]!.repo_digests).toEqual([`${reg.host}/test/busybox@${oci.digest}`]);
    expect(res.warnings).toEqual([]);

    const st = await statusOf(a, oci.ref);
    expect(st.image?.id).toBe(oci.configDigest);
    expect(st.image?.repo_tags).toEqual([oci.ref]);
    expect(Number(st.image?.size)).toBe(oci.size);
    const info = JSON.parse(st.info.info!) as { manifestDigest: string; layers: { chainID: string }[] };
    expect(info.manifestDigest).toBe(oci.digest);
    // Unpacked through the layer applier, under chain IDs.
    expect(existsSync(join(a.root, "layers", info.layers[0]!.chainID.slice(7), "bin/busybox"))).toBe(true);
    expect(readFileSync(join(a.root, "layers", info.layers[1]!.chainID.slice(7), "etc/oci"), "utf8")).toBe("oci\n");
    noLoadLeftovers(a);
  });

  test("a docker-save archive, zstd-compressed, through crib ctl load", async () => {
    const r = await ctl(a, "load", join(dir, "docker.tar.zst"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Loaded image: ${dock.ref}`);
    const st = await statusOf(a, dock.ref);
    expect(st.image?.id).toBe(dock.configDigest);
    expect(st.image?.repo_tags).toEqual([dock.ref]);
    // A docker-save archive carries no registry digest.
    expect(st.image?.repo_digests).toEqual([]);
    const list = await a.client.call("ImageService", "ListImages", {});
    expect(list.images.map((i) => i.id).sort()).toEqual([oci.configDigest, dock.configDigest].sort());
  });

  test("a gzip-compressed OCI archive; loading an image again changes nothing", async () => {
    const res = await load(a, join(dir, "oci.tar.gz"));
    expect(res.images.map((i) => i.id)).toEqual([oci.configDigest]);
    expect((await a.client.call("ImageService", "ListImages", {})).images.length).toBe(2);
  });

  test("a relative or missing path is refused with the path in the message", async () => {
    const rel = await criError(load(a, "oci.tar"));
    expect(rel.code).toBe(status.INVALID_ARGUMENT);
    const missing = await criError(load(a, join(dir, "nope.tar")));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain(join(dir, "nope.tar"));
  });
});

describe("hostile archives are refused, and leave nothing behind", () => {
  /** The OCI archive unpacked into a dir, to tamper with and pack again. */
  function ociLayout(): string {
    const d = join(dir, `layout-${Math.random().toString(16).slice(2)}`);
    mkdirSync(d);
    sh(["tar", "-xf", join(dir, "oci.tar"), "-C", d]);
    return d;
  }
  const pack = (d: string, out: string) => sh(["tar", "-cf", out, "-C", d, "."]);

  test("an entry that climbs out of the archive", async () => {
    const p = join(dir, "escape.tar");
    writeFileSync(p, tarBytes([{ type: "file", path: "../../evil", data: "x" }, { type: "file", path: "index.json", data: "{}" }]));
    const e = await criError(load(a, p));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain('"../../evil" climbs out of the archive');
    noLoadLeftovers(a);
  });

  test("a symlinked layer that points outside the archive", async () => {
    const p = join(dir, "symlink.tar");
    writeFileSync(p, tarBytes([
      { type: "file", path: "manifest.json", data: JSON.stringify([{ Config: "c.json", RepoTags: ["x/y:z"], Layers: ["l/layer.tar"] }]) },
      { type: "symlink", path: "l/layer.tar", target: "../../../etc/shadow" },
    ]));
    const e = await criError(load(a, p));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain("points outside the archive");
  });

  test("a blob whose content does not match its digest", async () => {
    const d = ociLayout();
    const layer = oci.layers[1]!.digest.slice(7);
    appendFileSync(join(d, "blobs/sha256", layer), "tampered");
    const p = join(dir, "tampered.tar");
    pack(d, p);
    const e = await criError(load(a, p));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain(`blobs/sha256/${layer} does not match its name`);
    noLoadLeftovers(a);
  });

  test("a blob the manifest needs is missing", async () => {
    const d = ociLayout();
    const layer = oci.layers[1]!.digest;
    rmSync(join(d, "blobs/sha256", layer.slice(7)));
    const p = join(dir, "missing.tar");
    pack(d, p);
    const e = await criError(load(a, p));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain(`lacks blob ${layer}`);
  });

  test("neither an OCI layout nor a docker archive", async () => {
    const p = join(dir, "plain.tar");
    writeFileSync(p, tarBytes([{ type: "file", path: "hello.txt", data: "hi" }]));
    const e = await criError(load(a, p));
    expect(e.details).toContain("neither an OCI image layout");
  });
});

describe("crib ctl save", () => {
  test("an OCI layout tar with a docker manifest.json; loading it into a second daemon gives the same digests", async () => {
    const out = join(dir, "saved.tar");
    const r = await ctl(a, "save", "-o", out, oci.ref, dock.ref);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const names = sh(["tar", "-tf", out]).split("\n");
    for (const n of ["oci-layout", "index.json", "manifest.json", `blobs/sha256/${oci.digest.slice(7)}`, `blobs/sha256/${dock.configDigest.slice(7)}`]) expect(names).toContain(n);

    // Other tools read it: the manifest skopeo sees is the registry's, byte for byte.
    const raw = sh(["skopeo", "inspect", "--raw", `oci-archive:${out}:${oci.ref}`]);
    expect(`sha256:${createHash("sha256").update(raw).digest("hex")}`).toBe(oci.digest);
    const viaDocker = JSON.parse(sh(["skopeo", "inspect", "--config", `docker-archive:${out}:${dock.ref}`])) as { rootfs: { diff_ids: string[] } };
    expect(viaDocker.rootfs.diff_ids).toEqual(dock.layers.map((l) => l.diffID));

    const b = await startCrib({ image: { pinned: [oci.ref] } });
    try {
      const res = await load(b, out);
      expect(res.format).toBe("oci");
      for (const ref of [oci.ref, dock.ref]) {
        const [sa, sb] = [await statusOf(a, ref), await statusOf(b, ref)];
        expect(sb.image?.id).toBe(sa.image!.id);
        expect(sb.image?.repo_tags).toEqual(sa.image!.repo_tags);
        const [ia, ib] = [JSON.parse(sa.info.info!), JSON.parse(sb.info.info!)] as { manifestDigest: string; layers: { digest: string; diffID: string }[] }[];
        expect(ib!.manifestDigest).toBe(ia!.manifestDigest);
        expect(ib!.layers).toEqual(ia!.layers);
      }
      expect((await statusOf(b, oci.ref)).image?.repo_digests).toEqual([`${reg.host}/test/busybox@${oci.digest}`]);
      // image.pinned in the config pins a loaded image too.
      expect((await statusOf(b, oci.ref)).image?.pinned).toBe(true);
      expect((await statusOf(b, dock.ref)).image?.pinned).toBe(false);
    } finally {
      await b.stop();
      b.cleanup();
    }
  });

  test("an unknown image is NOT_FOUND and no file is written", async () => {
    const out = join(dir, "none.tar");
    const e = await criError(a.client.call("Crib", "SaveImages", { images: [`${reg.host}/nope:1`], path: out }));
    expect(e.code).toBe(status.NOT_FOUND);
    expect(existsSync(out)).toBe(false);
  });
});

describe("crib ctl pin / unpin", () => {
  const pinnedIn = async (c: CribInstance, id: string) => (await c.client.call("ImageService", "ListImages", {})).images.find((i) => i.id === id)?.pinned;

  test("pinned: true in ListImages and ImageStatus, until unpinned", async () => {
    expect(await pinnedIn(a, oci.configDigest)).toBe(false);
    const p = await ctl(a, "pin", oci.ref);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain("Pinned:");
    expect(await pinnedIn(a, oci.configDigest)).toBe(true);
    expect((await statusOf(a, oci.ref)).image?.pinned).toBe(true);
    await ctl(a, "unpin", oci.ref);
    expect(await pinnedIn(a, oci.configDigest)).toBe(false);
  });

  test("an unknown image cannot be pinned", async () => {
    const e = await criError(a.client.call("Crib", "PinImage", { image: `${reg.host}/nope:1`, pinned: true }));
    expect(e.code).toBe(status.NOT_FOUND);
  });

  test("a manual RemoveImage still removes a pinned image (as containerd does; the kubelet never asks)", async () => {
    await a.client.call("Crib", "PinImage", { image: dock.ref, pinned: true });
    await a.client.call("ImageService", "RemoveImage", { image: { image: dock.ref } });
    expect((await statusOf(a, dock.ref)).image).toBeNull();
  });
});
