// Finding an image's cosign signatures on its registry, through the same
// client (mirrors, auth, TLS) as the pull:
//   - the tag "sha256-<hex>.sig" in the image's repository (cosign's layout):
//     an OCI manifest whose layers are simple-signing payloads, each with its
//     signature (base64) in the annotation dev.cosignproject.cosign/signature;
//   - the OCI 1.1 referrers API, where the registry offers it, for artifacts of
//     cosign's signature type (same manifest shape).
import { CribError, errorMessage } from "../../errors.ts";
import { log } from "../../log/logger.ts";
import type { Descriptor } from "../manifest.ts";
import { repoName, type ImageRef } from "../reference.ts";
import type { RegistryClient, RequestOptions } from "../registry/client.ts";
import { MAX_PAYLOAD_BYTES } from "./simple_signing.ts";

const logger = log.with({ component: "trust" });

export const SIMPLE_SIGNING_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json";
export const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
export const COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json";

/** Bounds on what a registry can make crib read for one image. */
const MAX_SIGNATURES = 32;
const MAX_REFERRERS = 16;
const MAX_SIGNATURE_BYTES = 16 * 1024;

/** A payload and the signature over it, as found on the registry. */
export interface FoundSignature {
  payload: Uint8Array;
  /** Raw signature bytes (DER for ECDSA). */
  signature: Uint8Array;
  /** Where it was found, for messages ("127.0.0.1:5000/app:sha256-ab12.sig"). */
  source: string;
}

export interface SignatureEntry {
  payload: Descriptor;
  signature: Uint8Array;
}

/** The cosign tag for a digest: "sha256:ab.." -> "sha256-ab...sig". */
export function signatureTag(digest: string): string {
  return `${digest.replace(":", "-")}.sig`;
}

/** The signed payloads a signature manifest lists (layers of the simple-signing type with a signature annotation). */
export function parseSignatureManifest(bytes: Uint8Array): SignatureEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error("the signature manifest is not JSON");
  }
  const layers = (doc as { layers?: unknown }).layers;
  if (!Array.isArray(layers)) throw new Error("the signature manifest has no layers");
  const out: SignatureEntry[] = [];
  for (const l of layers.slice(0, MAX_SIGNATURES)) {
    if (typeof l !== "object" || l === null) continue;
    const d = l as { mediaType?: unknown; digest?: unknown; size?: unknown; annotations?: unknown };
    if (d.mediaType !== SIMPLE_SIGNING_LAYER || typeof d.digest !== "string" || typeof d.size !== "number") continue;
    const sig = (d.annotations as Record<string, unknown> | undefined)?.[SIGNATURE_ANNOTATION];
    if (typeof sig !== "string" || sig.length > MAX_SIGNATURE_BYTES || !/^[A-Za-z0-9+/=\s]+$/.test(sig)) continue;
    out.push({ payload: { mediaType: d.mediaType, digest: d.digest, size: d.size }, signature: new Uint8Array(Buffer.from(sig, "base64")) });
  }
  return out;
}

/**
 * Every signature the registry holds for any of `digests`, and where crib
 * looked (for "no signature found" messages). Registry failures other than
 * "not there" are thrown (RegistryUnavailable...).
 */
export async function fetchSignatures(registry: RegistryClient, ref: ImageRef, digests: readonly string[], opts: RequestOptions): Promise<{ found: FoundSignature[]; looked: string[] }> {
  const found: FoundSignature[] = [];
  const looked: string[] = [];
  const seen = new Set<string>();
  const collect = async (bytes: Uint8Array, source: string) => {
    let entries: SignatureEntry[];
    try {
      entries = parseSignatureManifest(bytes);
    } catch (e) {
      logger.warn("ignoring a signature manifest that cannot be read", { source, error: errorMessage(e) });
      return;
    }
    for (const e of entries) {
      if (found.length >= MAX_SIGNATURES) return;
      let payload: Uint8Array;
      try {
        payload = await registry.fetchSmallBlob(ref, e.payload, MAX_PAYLOAD_BYTES, opts);
      } catch (err) {
        // A payload that is missing, too big or not what its digest says vouches for nothing.
        if (!(err instanceof CribError) || err.kind === "registry_unavailable") throw err;
        logger.warn("ignoring a signature whose payload cannot be fetched", { source, payload: e.payload.digest, error: err.message });
        continue;
      }
      found.push({ payload, signature: e.signature, source });
    }
  };
  for (const digest of digests) {
    const tag = signatureTag(digest);
    looked.push(`${repoName(ref)}:${tag}`);
    const doc = await registry.fetchDocument(ref, tag, opts);
    if (doc && !seen.has(doc.digest)) {
      seen.add(doc.digest);
      await collect(doc.bytes, `${doc.endpoint}/${ref.path}:${tag}`);
    }
    const referrers = await registry.referrers(ref, digest, COSIGN_SIGNATURE_ARTIFACT, opts);
    if (referrers === undefined) continue;
    looked.push(`referrers of ${repoName(ref)}@${digest}`);
    for (const d of referrers.slice(0, MAX_REFERRERS)) {
      if (seen.has(d.digest)) continue;
      seen.add(d.digest);
      const art = await registry.fetchDocument(ref, d.digest, opts);
      if (art) await collect(art.bytes, `${art.endpoint}/${ref.path}@${d.digest} (referrer)`);
    }
  }
  return { found, looked };
}
