// Signatures in cosign's layout, made in the test with node:crypto keys and
// pushed to a test registry exactly as `cosign sign --key` (2.x, no
// transparency log) leaves them (see /work/shared/TESTBED.md):
//   tag sha256-<hex>.sig in the image's repository -> an OCI manifest with one
//   layer of type application/vnd.dev.cosign.simplesigning.v1+json (the payload)
//   annotated dev.cosignproject.cosign/signature = base64 signature of the payload.
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MEDIA_TYPES, pushManifest, sha256Digest } from "./images.ts";
import type { TestRegistry } from "./registry.ts";

export type KeyKind = "p256" | "ed25519" | "rsa";

export interface TestKey {
  kind: KeyKind;
  privateKey: KeyObject;
  /** PEM SPKI public key file, as `cosign generate-key-pair` or `openssl pkey -pubout` writes it. */
  pubPath: string;
}

export function makeKey(kind: KeyKind, dir: string, name: string): TestKey {
  const pair =
    kind === "p256" ? generateKeyPairSync("ec", { namedCurve: "prime256v1" })
    : kind === "ed25519" ? generateKeyPairSync("ed25519")
    : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pubPath = join(dir, `${name}.pub`);
  writeFileSync(pubPath, pair.publicKey.export({ type: "spki", format: "pem" }));
  return { kind, privateKey: pair.privateKey, pubPath };
}

/** The simple-signing payload cosign writes, byte for byte. */
export function cosignPayload(dockerReference: string, digest: string): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      critical: { identity: { "docker-reference": dockerReference }, image: { "docker-manifest-digest": digest }, type: "cosign container image signature" },
      optional: null,
    }),
  );
}

/** Raw signature bytes of `payload` (DER for ECDSA, as cosign). */
export function signPayload(key: TestKey, payload: Uint8Array): Uint8Array {
  if (key.kind === "ed25519") return new Uint8Array(sign(null, payload, key.privateKey));
  if (key.kind === "p256") return new Uint8Array(sign("sha256", payload, { key: key.privateKey, dsaEncoding: "der" }));
  return new Uint8Array(sign("sha256", payload, key.privateKey));
}

/** The signature manifest for one or more (payload, signature) pairs. */
export function signatureManifest(entries: { payload: Uint8Array; signature: Uint8Array }[]): { bytes: Uint8Array; blobs: Uint8Array[] } {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "", os: "", config: {}, rootfs: { type: "layers", diff_ids: entries.map((e) => sha256Digest(e.payload)) } }));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256Digest(config), size: config.length },
    layers: entries.map((e) => ({
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      digest: sha256Digest(e.payload),
      size: e.payload.length,
      annotations: { "dev.cosignproject.cosign/signature": Buffer.from(e.signature).toString("base64") },
    })),
  };
  return { bytes: new TextEncoder().encode(JSON.stringify(manifest)), blobs: [config, ...entries.map((e) => e.payload)] };
}

/**
 * Sign `digest` of `repo` with `key` and push the signature under the cosign tag
 * for `tagDigest` (default: the same digest; another one makes a re-tagged
 * signature). `identity` is the payload's docker-reference (default: reg.host/repo).
 */
export async function pushCosignSignature(
  reg: TestRegistry,
  repo: string,
  digest: string,
  key: TestKey,
  opts: { identity?: string; tagDigest?: string } = {},
): Promise<string> {
  const payload = cosignPayload(opts.identity ?? `${reg.host}/${repo}`, digest);
  const m = signatureManifest([{ payload, signature: signPayload(key, payload) }]);
  const tag = `${(opts.tagDigest ?? digest).replace(":", "-")}.sig`;
  await pushManifest(reg, repo, tag, MEDIA_TYPES.ociManifest, m.bytes, m.blobs);
  return tag;
}
