import { describe, expect, test } from "bun:test";
import { CribError } from "../../src/errors.ts";
import { digestOf } from "../../src/image/digest.ts";
import {
  MAX_MANIFEST_BYTES,
  normalizePlatform,
  parseImageConfig,
  parseManifest,
  platformScore,
  selectPlatform,
  type Descriptor,
  type ImageIndex,
} from "../../src/image/manifest.ts";
import * as mt from "../../src/image/media_types.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const dg = (s: string) => digestOf(s);

function errOf(fn: () => unknown): CribError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CribError) return e;
    throw e;
  }
  throw new Error("expected a CribError");
}

const config = { mediaType: mt.OCI_CONFIG, digest: dg("config"), size: 100 };
const layer = (type: string, n = 1) => ({ mediaType: type, digest: dg(`layer${n}`), size: 1000 + n });

function ociManifest(extra: Record<string, unknown> = {}) {
  return { schemaVersion: 2, mediaType: mt.OCI_MANIFEST, config, layers: [layer(mt.OCI_LAYER_GZIP)], ...extra };
}

function entry(platform: Descriptor["platform"] | undefined, n: number, mediaType = mt.OCI_MANIFEST): Descriptor {
  const d: Descriptor = { mediaType, digest: dg(`m${n}`), size: 500 + n };
  if (platform) d.platform = platform;
  return d;
}

function index(entries: Descriptor[]): ImageIndex {
  return { kind: "index", schemaVersion: 2, mediaType: mt.OCI_INDEX, manifests: entries };
}

describe("parseManifest", () => {
  test("an OCI manifest", () => {
    const m = parseManifest(enc(ociManifest({ annotations: { a: "b" } })));
    expect(m.kind).toBe("manifest");
    if (m.kind !== "manifest") return;
    expect(m.mediaType).toBe(mt.OCI_MANIFEST);
    expect(m.config.digest).toBe(config.digest);
    expect(m.layers).toHaveLength(1);
    expect(m.annotations).toEqual({ a: "b" });
  });

  test("a Docker schema 2 manifest with every layer kind", () => {
    const m = parseManifest(
      enc({
        schemaVersion: 2,
        mediaType: mt.DOCKER_MANIFEST,
        config: { ...config, mediaType: mt.DOCKER_CONFIG },
        layers: [layer(mt.DOCKER_LAYER_GZIP, 1), layer(mt.OCI_LAYER_ZSTD, 2), layer(mt.OCI_LAYER, 3)],
      }),
    );
    expect(m.kind === "manifest" && m.layers.map((l) => mt.layerCompression(l.mediaType))).toEqual(["gzip", "zstd", "none"]);
  });

  test("media type from Content-Type or structure when the JSON has none", () => {
    const { mediaType: _, ...bare } = ociManifest();
    expect(parseManifest(enc(bare), { contentType: `${mt.DOCKER_MANIFEST}; charset=utf-8` }).mediaType).toBe(mt.DOCKER_MANIFEST);
    expect(parseManifest(enc(bare)).mediaType).toBe(mt.OCI_MANIFEST);
    const idx = parseManifest(enc({ schemaVersion: 2, manifests: [entry({ os: "linux", architecture: "amd64" }, 1)] }));
    expect(idx.kind).toBe("index");
    expect(idx.mediaType).toBe(mt.OCI_INDEX);
  });

  test("a Docker manifest list", () => {
    const idx = parseManifest(
      enc({ schemaVersion: 2, mediaType: mt.DOCKER_MANIFEST_LIST, manifests: [entry({ os: "linux", architecture: "arm", variant: "v7" }, 1, mt.DOCKER_MANIFEST)] }),
    );
    expect(idx.kind === "index" && idx.manifests[0]!.platform).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
  });

  test("schema 1 is refused clearly, by header, media type or schemaVersion", () => {
    for (const e of [
      errOf(() => parseManifest(enc(ociManifest()), { contentType: mt.DOCKER_SCHEMA1_SIGNED_MANIFEST, what: "manifest of x" })),
      errOf(() => parseManifest(enc({ schemaVersion: 2, mediaType: mt.DOCKER_SCHEMA1_MANIFEST }))),
      errOf(() => parseManifest(enc({ schemaVersion: 1, name: "x", tag: "y", fsLayers: [] }))),
    ]) {
      expect(e.kind).toBe("failed_precondition");
      expect(e.message).toContain("schema 1");
    }
  });

  test("unknown media types are refused naming the type", () => {
    const e = errOf(() => parseManifest(enc({ schemaVersion: 2, mediaType: "application/vnd.example.thing+json", config })));
    expect(e.kind).toBe("failed_precondition");
    expect(e.message).toContain("application/vnd.example.thing+json");
  });

  test("artifacts and foreign layers are refused", () => {
    const art = errOf(() => parseManifest(enc(ociManifest({ config: { ...config, mediaType: "application/vnd.cncf.helm.config.v1+json" } }))));
    expect(art.message).toContain("not a container image");
    const foreign = errOf(() => parseManifest(enc(ociManifest({ layers: [layer(mt.DOCKER_FOREIGN_LAYER_GZIP)] }))));
    expect(foreign.kind).toBe("failed_precondition");
    expect(foreign.message).toContain("foreign");
    const unknown = errOf(() => parseManifest(enc(ociManifest({ layers: [layer("application/x-tar+lz4")] }))));
    expect(unknown.message).toContain("application/x-tar+lz4");
  });

  test("malformed content is refused with a JSON path", () => {
    const cases: Array<[unknown, string]> = [
      ["not json", "not JSON"],
      [[1, 2], "not a JSON object"],
      [{ schemaVersion: 3, config }, "schemaVersion"],
      [{ schemaVersion: 2, mediaType: mt.OCI_MANIFEST, layers: [] }, "config: is missing"],
      [ociManifest({ layers: "x" }), "layers: must be a list"],
      [ociManifest({ config: { ...config, digest: "sha256:abc" } }), "config.digest"],
      [ociManifest({ config: { ...config, size: -1 } }), "config.size"],
      [ociManifest({ config: { ...config, size: 1.5 } }), "config.size"],
      [ociManifest({ config: { ...config, size: "1" } }), "config.size"],
      [ociManifest({ config: { ...config, mediaType: "nonsense" } }), "config.mediaType"],
      [ociManifest({ layers: [{ ...layer(mt.OCI_LAYER), urls: [1] }] }), "layers[0].urls"],
      [{ schemaVersion: 2, mediaType: mt.OCI_INDEX, manifests: [{ ...entry(undefined, 1), platform: { os: "linux" } }] }, "manifests[0].platform.architecture"],
      [{ schemaVersion: 2, mediaType: mt.OCI_INDEX }, "manifests: must be a list"],
    ];
    for (const [doc, where] of cases) {
      const e = errOf(() => parseManifest(enc(doc)));
      expect(e.kind).toBe("invalid_argument");
      expect(e.message).toContain(where);
    }
    expect(errOf(() => parseManifest(new Uint8Array([0xff, 0xfe]))).message).toContain("UTF-8");
  });

  test("a manifest over the size limit is refused before parsing", () => {
    const e = errOf(() => parseManifest(new Uint8Array(MAX_MANIFEST_BYTES + 1)));
    expect(e.kind).toBe("resource_exhausted");
    expect(e.message).toContain(String(MAX_MANIFEST_BYTES));
  });
});

describe("platforms", () => {
  test("normalisation", () => {
    expect(normalizePlatform({ os: "Linux", architecture: "x86_64" })).toEqual({ os: "linux", architecture: "amd64", variant: "" });
    expect(normalizePlatform({ os: "linux", architecture: "aarch64" })).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(normalizePlatform({ os: "linux", architecture: "arm" })).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(normalizePlatform({ os: "linux", architecture: "armhf" }).variant).toBe("v7");
    expect(normalizePlatform({ os: "linux", architecture: "arm", variant: "6" }).variant).toBe("v6");
    expect(normalizePlatform({ os: "linux", architecture: "i386" }).architecture).toBe("386");
  });

  test("variant matching", () => {
    const p = (architecture: string, variant?: string) => ({ os: "linux", architecture, ...(variant !== undefined ? { variant } : {}) });
    expect(platformScore(p("arm64", "v8"), p("arm64"))).toBeDefined(); // v8 == no variant
    expect(platformScore(p("arm64"), p("arm64", "v8"))).toBeDefined();
    expect(platformScore(p("amd64"), p("amd64", "v3"))).toBeDefined(); // amd64 ignores variant unless set
    expect(platformScore(p("amd64", "v2"), p("amd64", "v3"))).toBeUndefined();
    expect(platformScore(p("amd64", "v3"), p("amd64", "v2"))).toBeDefined();
    expect(platformScore(p("arm", "v7"), p("arm", "v6"))).toBeDefined();
    expect(platformScore(p("arm", "v6"), p("arm", "v7"))).toBeUndefined();
    expect(platformScore(p("amd64"), p("arm64"))).toBeUndefined();
    expect(platformScore(p("amd64"), { os: "windows", architecture: "amd64" })).toBeUndefined();
  });

  const multi = index([
    entry({ os: "linux", architecture: "amd64" }, 1),
    entry({ os: "linux", architecture: "arm", variant: "v6" }, 2),
    entry({ os: "linux", architecture: "arm", variant: "v7" }, 3),
    entry({ os: "linux", architecture: "arm64", variant: "v8" }, 4),
    entry({ os: "unknown", architecture: "unknown" }, 5),
    entry({ os: "linux", architecture: "amd64" }, 6, "application/vnd.in-toto+json"),
  ]);

  test("selectPlatform picks the best match", () => {
    expect(selectPlatform(multi, { os: "linux", architecture: "amd64" }).digest).toBe(dg("m1"));
    expect(selectPlatform(multi, { os: "linux", architecture: "arm64" }).digest).toBe(dg("m4"));
    expect(selectPlatform(multi, { os: "linux", architecture: "arm64", variant: "v8" }).digest).toBe(dg("m4"));
    expect(selectPlatform(multi, { os: "linux", architecture: "arm", variant: "v7" }).digest).toBe(dg("m3"));
    expect(selectPlatform(multi, { os: "linux", architecture: "arm", variant: "v6" }).digest).toBe(dg("m2"));
    // v8 arm runs v7 code; the highest compatible variant wins
    expect(selectPlatform(multi, { os: "linux", architecture: "arm", variant: "v8" }).digest).toBe(dg("m3"));
    // amd64 v3 node takes the plain amd64 image
    expect(selectPlatform(multi, { os: "linux", architecture: "amd64", variant: "v3" }).digest).toBe(dg("m1"));
  });

  test("exact amd64 variant is preferred over the plain one", () => {
    const idx = index([entry({ os: "linux", architecture: "amd64" }, 1), entry({ os: "linux", architecture: "amd64", variant: "v3" }, 2)]);
    expect(selectPlatform(idx, { os: "linux", architecture: "amd64", variant: "v3" }).digest).toBe(dg("m2"));
    expect(selectPlatform(idx, { os: "linux", architecture: "amd64" }).digest).toBe(dg("m1"));
  });

  test("no match: not_found listing what the index has", () => {
    const e = errOf(() => selectPlatform(multi, { os: "linux", architecture: "s390x" }, "index of x"));
    expect(e.kind).toBe("not_found");
    expect(e.message).toContain("linux/s390x");
    expect(e.message).toContain("index of x");
    expect(e.message).toContain("linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, unknown/unknown");
  });

  test("an entry without platform is the fallback", () => {
    const idx = index([entry({ os: "linux", architecture: "arm64" }, 1), entry(undefined, 2)]);
    expect(selectPlatform(idx, { os: "linux", architecture: "amd64" }).digest).toBe(dg("m2"));
    expect(selectPlatform(idx, { os: "linux", architecture: "arm64" }).digest).toBe(dg("m1"));
  });
});

describe("parseImageConfig", () => {
  const good = {
    architecture: "amd64",
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: {
      User: "1000:1000",
      Env: ["PATH=/bin", "A=b"],
      Entrypoint: ["/bin/sh", "-c"],
      Cmd: null,
      WorkingDir: "/work",
      ExposedPorts: { "80/tcp": {} },
      Volumes: { "/data": {} },
      Labels: { a: "b" },
      StopSignal: "SIGQUIT",
    },
    rootfs: { type: "layers", diff_ids: [dg("d1"), dg("d2")] },
    history: [{ created_by: "x" }, { created_by: "y", empty_layer: true }],
  };

  test("a full config", () => {
    const c = parseImageConfig(enc(good), { layers: 2 });
    expect(c.os).toBe("linux");
    expect(c.config?.Entrypoint).toEqual(["/bin/sh", "-c"]);
    expect(c.config?.Cmd).toBeUndefined();
    expect(c.config?.ExposedPorts).toEqual({ "80/tcp": {} });
    expect(c.config?.Labels).toEqual({ a: "b" });
    expect(c.config?.StopSignal).toBe("SIGQUIT");
    expect(c.rootfs.diff_ids).toHaveLength(2);
    expect(c.history?.[1]?.empty_layer).toBe(true);
  });

  test("diff_ids must match the layer count", () => {
    const e = errOf(() => parseImageConfig(enc(good), { layers: 3, what: "config of x" }));
    expect(e.message).toContain("config of x");
    expect(e.message).toContain("has 2 entries but the manifest has 3 layers");
  });

  test("bad configs", () => {
    const cases: Array<[unknown, string]> = [
      [{ ...good, os: undefined }, "os: is missing"],
      [{ ...good, architecture: 5 }, "architecture: must be a string"],
      [{ ...good, rootfs: undefined }, "rootfs"],
      [{ ...good, rootfs: { type: "zfs", diff_ids: [] } }, "rootfs.type"],
      [{ ...good, rootfs: { type: "layers", diff_ids: ["x"] } }, "rootfs.diff_ids[0]"],
      [{ ...good, config: { Env: "A=b" } }, "config.Env"],
      [{ ...good, config: { Labels: { a: 1 } } }, "config.Labels"],
      [{ ...good, config: { ExposedPorts: { "80/tcp": 1 } } }, "config.ExposedPorts"],
      [{ ...good, history: [{ empty_layer: "yes" }] }, "history[0].empty_layer"],
    ];
    for (const [doc, where] of cases) {
      const e = errOf(() => parseImageConfig(enc(doc)));
      expect(e.kind).toBe("invalid_argument");
      expect(e.message).toContain(where);
    }
  });
});
