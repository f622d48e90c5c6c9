// Image trust on the node (issue 17), against the compiled dist/crib and real
// docker-registry instances: cosign-layout signatures made here with node:crypto
// keys, the `policy` config section, refusals on gRPC UNKNOWN with the kubelet's
// SignatureValidationFailed / RegistryUnavailable prefixes, nothing of a refused
// image on disk, SIGHUP reloads, CreateContainer after a tightening, ctl verify.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { NamespaceMode } from "../../src/protocol/types.ts";
import { cosignPayload, type KeyKind, makeKey, pushCosignSignature, signatureManifest, signPayload, type TestKey } from "../helpers/cosign.ts";
import { containerConfig, criError, podConfig } from "../helpers/cri.ts";
import { type CribInstance, requireBinary, runCrib, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, MEDIA_TYPES, pushImage, pushManifest, sha256Digest, type PushedImage } from "../helpers/images.ts";
import { freePort, startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";

/** A registry host nobody serves: reachable only through its mirror. */
const MIRRORED_HOST = "trust.example.test";

let reg: StartedRegistry;
let mirror: StartedRegistry;
let crib: CribInstance;
let keyDir: string;
const keys = {} as Record<"p256" | "ed" | "other" | "rsa", TestKey>;
const img = {} as Record<"signed" | "ed" | "rsa" | "unsigned" | "other" | "retag" | "tampered" | "open" | "blocked" | "mirrored" | "wrongIdentity", PushedImage>;
let tamperedDigest: string;
/** An OCI 1.1 front for `reg`: answers the referrers API, forwards the rest. */
let referrersFront: { host: string; asked: string[]; stop(): void };
let referred: PushedImage;

/** busybox plus a one-file layer distinct per name (so each image has its own digests). */
async function smallImage(r: StartedRegistry, repoTag: string): Promise<PushedImage> {
  return pushImage(r, repoTag, { layers: [busyboxLayer(), [{ type: "file", path: `etc/${repoTag.replace(/[/:]/g, "_")}`, data: `${repoTag}\n` }]], config: { Cmd: ["true"] } });
}

/** The policy of the first daemon; `overrides` replace rules for reload tests. */
function policy(overrides: Record<string, unknown> = {}) {
  return {
    default: "accept",
    rules: {
      [reg.host]: { type: "signedBy", keys: [keys.p256.pubPath, keys.ed.pubPath, keys.rsa.pubPath] },
      [`${reg.host}/open`]: "accept",
      [`${reg.host}/blocked`]: { type: "reject" },
      [MIRRORED_HOST]: { type: "signedBy", keys: [keys.p256.pubPath] },
      [referrersFront.host]: { type: "signedBy", keys: [keys.ed.pubPath] },
      ...overrides,
    },
  };
}

function configFor(c: { socket: string; root: string; state: string }, pol: unknown): Record<string, unknown> {
  return {
    socket: c.socket, root: c.root, state: c.state, log: { level: "debug" },
    registries: { mirrors: { [MIRRORED_HOST]: { endpoint: [mirror.url] } } },
    pull: { progressTimeout: "10s" },
    policy: pol,
  };
}

const pull = (image: string) => crib.client.call("ImageService", "PullImage", { image: { image }, auth: null }, { timeoutMs: 60_000 });

/** SIGHUP with a new config file, and wait for the daemon's verdict on it. */
async function reload(text: string): Promise<string> {
  writeFileSync(crib.configPath, text);
  const before = crib.logs().length;
  crib.proc.kill("SIGHUP");
  for (let i = 0; i < 250; i++) {
    const tail = crib.logs().slice(before);
    if (tail.includes('"config reloaded"') || tail.includes('"config reload failed')) return tail;
    await Bun.sleep(20);
  }
  throw new Error(`no reload outcome in the log:\n${crib.logs().slice(before)}`);
}

function blobNames(): string[] {
  const dir = join(crib.root, "blobs", "sha256");
  return existsSync(dir) ? readdirSync(dir) : [];
}

beforeAll(async () => {
  reg = await startRegistry();
  mirror = await startRegistry();
  keyDir = tempDir("crib-keys-");
  const make = (kind: KeyKind, name: string) => makeKey(kind, keyDir, name);
  keys.p256 = make("p256", "team");
  keys.ed = make("ed25519", "edge");
  keys.other = make("p256", "stranger");
  keys.rsa = make("rsa", "legacy");

  img.signed = await pushImage(reg, "team/app:v1", { layers: [busyboxLayer()], config: { Cmd: ["sh"] } });
  await pushCosignSignature(reg, "team/app", img.signed.digest, keys.p256);
  img.ed = await smallImage(reg, "team/ed:v1");
  await pushCosignSignature(reg, "team/ed", img.ed.digest, keys.ed);
  img.rsa = await smallImage(reg, "team/rsa:v1");
  await pushCosignSignature(reg, "team/rsa", img.rsa.digest, keys.rsa);
  img.unsigned = await smallImage(reg, "team/unsigned:v1");
  img.other = await smallImage(reg, "team/other:v1");
  await pushCosignSignature(reg, "team/other", img.other.digest, keys.other);
  // A re-tag: image B carries, under its own signature tag, a genuine signature of image A.
  img.retag = await smallImage(reg, "team/retag:v1");
  await pushCosignSignature(reg, "team/retag", img.signed.digest, keys.p256, { tagDigest: img.retag.digest, identity: `${reg.host}/team/retag` });
  // Tampered: signed, then the manifest under the tag is replaced by one with other bytes.
  img.tampered = await smallImage(reg, "team/tampered:v1");
  await pushCosignSignature(reg, "team/tampered", img.tampered.digest, keys.p256);
  const m = JSON.parse(new TextDecoder().decode(img.tampered.manifestBytes)) as Record<string, unknown>;
  m.annotations = { "org.example.injected": "yes" };
  tamperedDigest = await pushManifest(reg, "team/tampered", "v1", MEDIA_TYPES.ociManifest, new TextEncoder().encode(JSON.stringify(m)));
  img.open = await smallImage(reg, "open/app:v1");
  img.blocked = await smallImage(reg, "blocked/app:v1");
  // Through the mirror only: the signature names the original registry, not the mirror.
  img.mirrored = await smallImage(mirror, "mirrored/app:v1");
  await pushCosignSignature(mirror, "mirrored/app", img.mirrored.digest, keys.p256, { identity: `${MIRRORED_HOST}/mirrored/app` });
  img.wrongIdentity = await smallImage(mirror, "mirrored/wrongid:v1");
  await pushCosignSignature(mirror, "mirrored/wrongid", img.wrongIdentity.digest, keys.p256); // names the mirror's host

  // Referrers: the signature manifest is pushed by digest only (no cosign tag) and
  // listed by the front's referrers answer, as an OCI 1.1 registry lists it.
  referred = await smallImage(reg, "team/referred:v1");
  const front = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => frontFetch(req) });
  referrersFront = { host: `127.0.0.1:${front.port}`, asked: [], stop: () => void front.stop(true) };
  const payload = cosignPayload(`${referrersFront.host}/team/referred`, referred.digest);
  const sig = signatureManifest([{ payload, signature: signPayload(keys.ed, payload) }]);
  const sigDigest = await pushManifest(reg, "team/referred", sha256Digest(sig.bytes), MEDIA_TYPES.ociManifest, sig.bytes, sig.blobs);
  const frontFetch = async (req: Request): Promise<Response> => {
    const u = new URL(req.url);
    if (u.pathname === `/v2/team/referred/referrers/${referred.digest}`) {
      referrersFront.asked.push(u.search);
      return Response.json(
        { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: sigDigest, size: sig.bytes.length, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json" }] },
        { headers: { "content-type": MEDIA_TYPES.ociIndex } },
      );
    }
    const h = new Headers(req.headers);
    h.delete("host");
    return fetch(`${reg.url}${u.pathname}${u.search}`, { method: req.method, headers: h, redirect: "manual" });
  };

  const t = tempConfig();
  writeFileSync(t.configPath, stringify(configFor(t, policy())));
  crib = await startCrib({}, t);
});

afterAll(async () => {
  if (crib) {
    const pods = await crib.client.call("RuntimeService", "ListPodSandbox", { filter: null }).catch(() => ({ items: [] }));
    for (const p of pods.items) await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
    if (crib.proc.exitCode === null) await crib.stop();
    crib.cleanup();
  }
  referrersFront?.stop();
  await reg?.stop();
  await mirror?.stop();
});

describe("pulls under a signedBy rule", () => {
  test("an image signed with a trusted P-256 key is pulled", async () => {
    const res = await pull(img.signed.ref);
    expect(res.image_ref).toBe(img.signed.configDigest);
    expect(crib.logs()).toContain('"image passed the signature policy"');
  });

  test("Ed25519 and RSA keys verify too", async () => {
    expect((await pull(img.ed.ref)).image_ref).toBe(img.ed.configDigest);
    expect((await pull(img.rsa.ref)).image_ref).toBe(img.rsa.configDigest);
  });

  test("a pull by digest is verified the same way", async () => {
    expect((await pull(`${reg.host}/team/app@${img.signed.digest}`)).image_ref).toBe(img.signed.configDigest);
    const e = await criError(pull(`${reg.host}/team/unsigned@${img.unsigned.digest}`));
    expect(e.code).toBe(status.UNKNOWN);
    expect(e.details).toStartWith("SignatureValidationFailed: no signature found for ");
  });

  test("an unsigned image is refused with UNKNOWN SignatureValidationFailed, and nothing of it reaches the disk", async () => {
    const before = blobNames();
    const e = await criError(pull(img.unsigned.ref));
    expect(e.code).toBe(status.UNKNOWN);
    expect(e.details).toStartWith(`SignatureValidationFailed: no signature found for ${img.unsigned.ref} (${img.unsigned.digest})`);
    expect(e.details).toContain(`team/unsigned:${img.unsigned.digest.replace(":", "-")}.sig`);
    expect(e.details).toContain(`policy rule "${reg.host}" (signedBy`);
    // No image record, no blob (manifest, config, layer), no partial download, no layer.
    const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: img.unsigned.ref }, verbose: false });
    expect(st.image).toBeNull();
    const after = blobNames();
    expect(after.filter((b) => !before.includes(b))).toEqual([]);
    for (const d of [img.unsigned.digest, img.unsigned.configDigest, img.unsigned.layers[1]!.digest]) expect(after).not.toContain(d.slice(7));
    const ingest = join(crib.root, "ingest");
    expect(existsSync(ingest) ? readdirSync(ingest) : []).toEqual([]);
    const usage = await crib.client.call("Crib", "StoreUsage", {});
    expect(usage.orphan_blobs).toEqual([]);
    expect(usage.orphan_layers).toEqual([]);
  });

  test("a signature by a key the policy does not hold is refused: no key matched", async () => {
    const e = await criError(pull(img.other.ref));
    expect(e.code).toBe(status.UNKNOWN);
    expect(e.details).toStartWith(`SignatureValidationFailed: no key matched: 1 signature(s) of ${img.other.ref}`);
  });

  test("a genuine signature of another digest (a re-tag) is refused", async () => {
    const e = await criError(pull(img.retag.ref));
    expect(e.details).toStartWith(`SignatureValidationFailed: the signature is for ${img.signed.digest}, not for the image pulled (${img.retag.digest})`);
  });

  test("a tampered manifest has no signature for its digest", async () => {
    const e = await criError(pull(img.tampered.ref));
    expect(e.details).toStartWith(`SignatureValidationFailed: no signature found for ${img.tampered.ref} (${tamperedDigest})`);
  });

  test("a signature reachable only through a mirror is found there, its scope the original name", async () => {
    const ref = `${MIRRORED_HOST}/mirrored/app:v1`;
    expect((await pull(ref)).image_ref).toBe(img.mirrored.configDigest);
    // A signature naming the mirror's own host does not vouch for the original name.
    const e = await criError(pull(`${MIRRORED_HOST}/mirrored/wrongid:v1`));
    expect(e.details).toStartWith(`SignatureValidationFailed: the signature is for the image ${mirror.host}/mirrored/wrongid, not ${MIRRORED_HOST}/mirrored/wrongid`);
  });

  test("a signature listed only by the OCI 1.1 referrers API is found", async () => {
    expect((await pull(`${referrersFront.host}/team/referred:v1`)).image_ref).toBe(referred.configDigest);
    expect(referrersFront.asked).toEqual([`?artifactType=${encodeURIComponent("application/vnd.dev.cosign.artifact.sig.v1+json")}`]);
  });

  test("scopes: a repository prefix rule wins over the host rule; reject refuses", async () => {
    expect((await pull(img.open.ref)).image_ref).toBe(img.open.configDigest);
    const e = await criError(pull(img.blocked.ref));
    expect(e.code).toBe(status.UNKNOWN);
    expect(e.details).toBe(`SignatureValidationFailed: ${img.blocked.ref} is rejected by policy rule "${reg.host}/blocked" (reject)`);
    // Refused before the registry is asked: a rejected registry that is down is still "rejected".
    const gone = await criError(pull(`${reg.host}/blocked/nothing-here:1`));
    expect(gone.details).toStartWith("SignatureValidationFailed: ");
  });

  test("an unreachable registry is UNKNOWN RegistryUnavailable", async () => {
    const port = await freePort();
    const e = await criError(pull(`127.0.0.1:${port}/x/y:1`));
    expect(e.code).toBe(status.UNKNOWN);
    expect(e.details).toStartWith(`RegistryUnavailable: cannot reach registry 127.0.0.1:${port}`);
  });
});

describe("crib ctl", () => {
  test("verify prints the rule and the key that matched; a refused image exits 1 with the reason", async () => {
    const ok = await runCrib(["ctl", "-r", `unix://${crib.socket}`, "verify", img.signed.ref]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`rule:       ${reg.host} (signedBy)`);
    expect(ok.stdout).toContain(`matched:    ${keys.p256.pubPath} (ecdsa-p256`);
    expect(ok.stdout).toContain("allowed:    signed by");
    const bad = await runCrib(["ctl", "-r", `unix://${crib.socket}`, "verify", img.other.ref]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("refused:    no key matched");
  });

  test("pull shows the verification step", async () => {
    const r = await runCrib(["ctl", "-r", `unix://${crib.socket}`, "pull", img.ed.ref]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`verify  signed by ${keys.ed.pubPath} (ed25519)`);
  });
});

describe("policy changes (SIGHUP)", () => {
  const text = (pol: unknown) => stringify(configFor(crib, pol));

  test("a reload with a bad policy keeps the old one and logs why, naming the key and line", async () => {
    const bad = text(policy({ [`${reg.host}/team`]: { type: "signedBy", keys: ["/nonexistent/team.pub"] } }));
    const line = bad.split("\n").findIndex((l) => l.includes("/nonexistent/team.pub")) + 1;
    const log = await reload(bad);
    expect(log).toContain("config reload failed");
    expect(log).toContain(`policy.rules[\\"${reg.host}/team\\"].keys[0]: cannot read public key /nonexistent/team.pub`);
    expect(log).toContain(`(line ${line})`);
    // The old policy holds: unsigned still refused, the open prefix still open.
    expect((await criError(pull(img.unsigned.ref))).details).toStartWith("SignatureValidationFailed: ");
    expect((await pull(img.open.ref)).image_ref).toBe(img.open.configDigest);

    const unknownType = await reload(text(policy({ [reg.host]: { type: "signedby", keys: [keys.p256.pubPath] } })));
    expect(unknownType).toContain(`policy.rules[\\"${reg.host}\\"].type: unknown rule type \\"signedby\\"`);
    const notAKey = join(keyDir, "not-a-key.pub");
    writeFileSync(notAKey, "hello\n");
    expect(await reload(text(policy({ [reg.host]: { type: "signedBy", keys: [notAKey] } })))).toContain("is not a PEM public key");
  });

  test("after a tightening, CreateContainer refuses images on the node that the policy now rejects", async () => {
    const pod = podConfig("trust", { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
    const { pod_sandbox_id: podId } = await crib.client.call("RuntimeService", "RunPodSandbox", { config: pod });
    const create = (name: string, image: PushedImage) =>
      crib.client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: containerConfig(name, image.ref, ["true"]), sandbox_config: pod });

    // open/app was accepted by its prefix rule; without that rule the host's signedBy applies.
    const tighter = policy();
    delete (tighter.rules as Record<string, unknown>)[`${reg.host}/open`];
    expect(await reload(text(tighter))).toContain('"config reloaded"');
    const e = await criError(create("open", img.open));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain(`image ${img.open.ref} (${img.open.configDigest}) is on the node but the current signature policy refuses it`);
    expect(e.details).toContain(`policy rule "${reg.host}" (signedBy`);
    // A signed image still runs, judged from the signatures kept at pull time.
    expect((await create("signed", img.signed)).container_id).toMatch(/^[0-9a-f]{64}$/);

    // Key rotation: only the Ed25519 key is trusted now; the P-256-signed image is refused, the Ed25519 one is not.
    expect(await reload(text(policy({ [reg.host]: { type: "signedBy", keys: [keys.ed.pubPath] } })))).toContain('"config reloaded"');
    expect((await criError(create("signed2", img.signed))).details).toContain("no key matched");
    expect((await create("ed", img.ed)).container_id).toMatch(/^[0-9a-f]{64}$/);

    // requireAll: both keys must have signed.
    expect(await reload(text(policy({ [reg.host]: { type: "signedBy", keys: [keys.p256.pubPath, keys.ed.pubPath], requireAll: true } })))).toContain('"config reloaded"');
    expect((await criError(create("ed2", img.ed))).details).toContain(`no valid signature of`);

    // Back to the first policy.
    expect(await reload(text(policy()))).toContain('"config reloaded"');
    expect((await create("open2", img.open)).container_id).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("start-up", () => {
  test("a bad policy fails start-up with the file, key path and line", async () => {
    const t = tempConfig();
    const text = [
      `socket: ${t.socket}`,
      `root: ${t.root}`,
      `state: ${t.state}`,
      "policy:",
      "  default: accept",
      "  rules:",
      '    "registry.example.com/team":',
      "      type: signedBy",
      `      keys: [${keys.p256.pubPath}, /etc/crib/missing.pub]`,
      "",
    ].join("\n");
    writeFileSync(t.configPath, text);
    const proc = Bun.spawn([requireBinary(), "serve", "--config", t.configPath], { stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).not.toBe(0);
    expect(stderr).toContain(`${t.configPath}: policy.rules["registry.example.com/team"].keys[1]: cannot read public key /etc/crib/missing.pub`);
    expect(stderr).toContain("(line 9)");
  });
});
