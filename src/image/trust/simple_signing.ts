// The payload cosign signs ("simple signing", the containers/image format):
//   {"critical":{"identity":{"docker-reference":"host/repo"},
//                "image":{"docker-manifest-digest":"sha256:..."},
//                "type":"cosign container image signature"},"optional":{...}}
// A valid signature over a payload proves only what the payload says: it must
// name the digest actually pulled and the repository actually asked for, or a
// signature of one image could be replayed for another (a re-tag).
import { parseReference, repoName, type ImageRef } from "../reference.ts";

/** Largest payload read (cosign's are ~250 bytes; optional annotations add some). */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

export const SIMPLE_SIGNING_TYPES = ["cosign container image signature", "atomic container signature"];

export interface SimpleSigning {
  /** critical.identity.docker-reference, as written. */
  reference: string;
  /** critical.image.docker-manifest-digest */
  digest: string;
}

/** Parse a payload; throws an Error saying what is wrong with it. */
export function parsePayload(bytes: Uint8Array): SimpleSigning {
  if (bytes.length > MAX_PAYLOAD_BYTES) throw new Error(`the payload is ${bytes.length} bytes, over ${MAX_PAYLOAD_BYTES}`);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new Error("the payload is not JSON");
  }
  const critical = field(doc, "critical");
  const type = field(critical, "type");
  if (typeof type !== "string" || !SIMPLE_SIGNING_TYPES.includes(type)) throw new Error(`the payload's critical.type is ${JSON.stringify(type)}, not a container image signature`);
  const reference = field(field(critical, "identity"), "docker-reference");
  const digest = field(field(critical, "image"), "docker-manifest-digest");
  if (typeof reference !== "string" || reference === "") throw new Error("the payload has no critical.identity.docker-reference");
  if (typeof digest !== "string" || digest === "") throw new Error("the payload has no critical.image.docker-manifest-digest");
  return { reference, digest };
}

function field(v: unknown, key: string): unknown {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[key] : undefined;
}

/**
 * Why a (cryptographically valid) payload does not vouch for the image, or
 * undefined when it does. `digests` are the digests that name what was pulled
 * (the index and the platform manifest); `ref` is the reference asked for,
 * never a mirror's name. The payload's reference must be the same repository;
 * if it carries a tag, the same tag (cosign writes the bare repository).
 */
export function payloadProblem(p: SimpleSigning, digests: readonly string[], ref: ImageRef): string | undefined {
  if (!digests.includes(p.digest)) {
    return `the signature is for ${p.digest}, not for the image pulled (${digests.join(" / ")}): it was made for another image (a re-tagged or replaced one)`;
  }
  let signed: ImageRef;
  try {
    signed = parseReference(p.reference);
  } catch {
    return `the signature names "${p.reference}", which is not an image reference`;
  }
  if (repoName(signed) !== repoName(ref)) return `the signature is for the image ${repoName(signed)}, not ${repoName(ref)}`;
  if (signed.digest !== undefined && !digests.includes(signed.digest)) return `the signature names ${p.reference}, another digest than the image pulled`;
  const explicitTag = /:[\w][\w.-]*$/.test(p.reference.slice(p.reference.lastIndexOf("/") + 1).split("@")[0] ?? "");
  if (explicitTag && ref.tag !== undefined && signed.tag !== ref.tag) return `the signature is for the tag ${signed.tag}, not ${ref.tag}`;
  return undefined;
}
