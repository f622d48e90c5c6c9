// Content digests ("sha256:<hex>"), as the OCI image spec defines them.
// Only the registered algorithms sha256 and sha512 are accepted: a digest
// names a file under blobs/<algorithm>/, so anything else is refused here.
import { invalidArgument } from "../errors.ts";

export type DigestAlgorithm = "sha256" | "sha512";

/** A parsed digest. `text` is the canonical "algorithm:hex" form. */
export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  text: string;
}

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_SHAPE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Parse and validate "sha256:<64 lowercase hex>" or "sha512:<128 lowercase hex>". */
export function parseDigest(text: string): Digest {
  const m = DIGEST_SHAPE.exec(text);
  if (!m) throw invalidArgument(`invalid digest "${clip(text)}": expected "sha256:<64 hex digits>"`);
  const algorithm = m[1]!;
  const hex = m[2]!;
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    throw invalidArgument(`invalid digest "${clip(text)}": unsupported algorithm "${algorithm}" (only sha256 and sha512)`);
  }
  const want = HEX_LENGTH[algorithm];
  if (hex.length !== want || !/^[a-f0-9]+$/.test(hex)) {
    throw invalidArgument(`invalid digest "${clip(text)}": ${algorithm} needs ${want} lowercase hex digits`);
  }
  return { algorithm, hex, text };
}

/** True when `text` is a valid, supported digest. */
export function isValidDigest(text: string): boolean {
  try {
    parseDigest(text);
    return true;
  } catch {
    return false;
  }
}

/** Streaming hash of bytes, for verifying content as it arrives. */
export class Hasher {
  readonly algorithm: DigestAlgorithm;
  private readonly h: Bun.CryptoHasher;
  private count = 0;

  constructor(algorithm: DigestAlgorithm = "sha256") {
    this.algorithm = algorithm;
    this.h = new Bun.CryptoHasher(algorithm);
  }

  update(bytes: Uint8Array): void {
    this.h.update(bytes);
    this.count += bytes.length;
  }

  /** Bytes hashed so far. */
  get length(): number {
    return this.count;
  }

  /** The digest ("sha256:<hex>") of everything hashed. Ends the hasher. */
  digest(): string {
    return `${this.algorithm}:${this.h.digest("hex")}`;
  }
}

/** The digest of bytes in memory. */
export function digestOf(bytes: Uint8Array | string, algorithm: DigestAlgorithm = "sha256"): string {
  const h = new Bun.CryptoHasher(algorithm);
  h.update(bytes);
  return `${algorithm}:${h.digest("hex")}`;
}

function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
