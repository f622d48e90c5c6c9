// Public keys of the signature policy: PEM files (SPKI "PUBLIC KEY", as cosign
// and openssl write them) read once when the config is loaded, and signature
// checks with node:crypto. Supported: ECDSA P-256 (SHA-256, cosign's default)
// and P-384 (SHA-384), Ed25519, RSA (PKCS#1 v1.5 or PSS, SHA-256).
import { constants, createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { SchemaError, type Segment } from "../../config/schema.ts";
import { errorMessage } from "../../errors.ts";
import type { PolicyConfig, PolicyRuleConfig, RuleType } from "../../config/policy_section.ts";
import { matchRule, normaliseScope } from "./policy.ts";
import type { ImageRef } from "../reference.ts";

/** Largest key file read (a 16384-bit RSA key is ~3 kB of PEM). */
const MAX_KEY_FILE_BYTES = 64 * 1024;

export interface PublicKey {
  /** The file it came from. */
  path: string;
  /** "ecdsa-p256", "ed25519", ... */
  type: string;
  /** sha256 of the SPKI DER, hex: what "the key set" of a cache entry means. */
  fingerprint: string;
  key: KeyObject;
}

export interface Rule {
  /** The scope as written in the config, or "default". */
  scope: string;
  type: RuleType;
  keys: PublicKey[];
  requireAll: boolean;
}

export interface Policy {
  default: Rule;
  /** Normalised scope -> rule. */
  rules: Map<string, Rule>;
}

/** Read one PEM public key file; the problem is thrown as an Error naming the file. */
export function loadPublicKey(path: string): PublicKey {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read public key ${path}: ${errorMessage(e)}`);
  }
  if (pem.length > MAX_KEY_FILE_BYTES) throw new Error(`public key ${path} is ${pem.length} bytes, more than a key file holds`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (e) {
    throw new Error(`${path} is not a PEM public key (expected "-----BEGIN PUBLIC KEY-----", as cosign generate-key-pair or openssl pkey -pubout write): ${errorMessage(e)}`);
  }
  const type = keyType(key);
  if (!type) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    throw new Error(`public key ${path} is of an unsupported type ${key.asymmetricKeyType}${curve ? ` (${curve})` : ""}: use ECDSA P-256 or P-384, Ed25519 or RSA`);
  }
  const der = key.export({ type: "spki", format: "der" });
  return { path, type, fingerprint: createHash("sha256").update(der).digest("hex"), key };
}

function keyType(key: KeyObject): string | undefined {
  switch (key.asymmetricKeyType) {
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === "prime256v1" || curve === "P-256") return "ecdsa-p256";
      if (curve === "secp384r1" || curve === "P-384") return "ecdsa-p384";
      return undefined;
    }
    case "ed25519": return "ed25519";
    case "rsa": return "rsa";
    case "rsa-pss": return "rsa-pss";
    default: return undefined;
  }
}

/** True when `signature` (raw bytes: DER for ECDSA) is `key`'s signature of exactly `payload`. */
export function verifySignature(key: PublicKey, payload: Uint8Array, signature: Uint8Array): boolean {
  try {
    switch (key.type) {
      case "ed25519":
        return verify(null, payload, key.key, signature);
      case "ecdsa-p256":
        return verify("sha256", payload, { key: key.key, dsaEncoding: "der" }, signature);
      case "ecdsa-p384":
        return verify("sha384", payload, { key: key.key, dsaEncoding: "der" }, signature);
      case "rsa":
        return verify("sha256", payload, key.key, signature) || verify("sha256", payload, { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING }, signature);
      case "rsa-pss":
        return verify("sha256", payload, key.key, signature);
      default:
        return false;
    }
  } catch {
    return false; // a malformed signature is simply not a valid one
  }
}

/**
 * Read the keys of a checked policy section. A key that cannot be used fails
 * with a SchemaError at the key's place in the file (the config loader adds
 * the file and line). Each file is read once, however many rules name it.
 */
export function compilePolicy(cfg: PolicyConfig, path = "policy", at: Segment[] = ["policy"]): Policy {
  const loaded = new Map<string, PublicKey>();
  const compile = (scope: string, rule: PolicyRuleConfig, where: string, a: Segment[]): Rule => {
    const keys = (rule.keys ?? []).map((file, i) => {
      let k = loaded.get(file);
      if (!k) {
        try {
          k = loadPublicKey(file);
        } catch (e) {
          throw new SchemaError(`${where}.keys[${i}]`, errorMessage(e), [...a, "keys", i]);
        }
        loaded.set(file, k);
      }
      return k;
    });
    return { scope, type: rule.type, keys, requireAll: rule.requireAll ?? false };
  };
  const rules = new Map<string, Rule>();
  for (const [scope, rule] of Object.entries(cfg.rules)) {
    let key: string;
    try {
      key = normaliseScope(scope);
    } catch (e) {
      throw new SchemaError(`${path}.rules["${scope}"]`, errorMessage(e), [...at, "rules", scope]);
    }
    if (rules.has(key)) throw new SchemaError(`${path}.rules["${scope}"]`, `the same scope as "${rules.get(key)!.scope}" (both mean ${key})`, [...at, "rules", scope]);
    rules.set(key, compile(scope, rule, `${path}.rules["${scope}"]`, [...at, "rules", scope]));
  }
  return { default: compile("default", cfg.default, `${path}.default`, [...at, "default"]), rules };
}

/** The rule for an image reference. */
export function ruleFor(policy: Policy, ref: ImageRef): Rule {
  return matchRule(policy.rules, policy.default, ref).rule;
}

/** How a rule reads in messages: `rule "registry.example.com/team" (signedBy /etc/crib/keys/team.pub)`. */
export function describeRule(rule: Rule): string {
  const what = rule.type === "signedBy" ? `signedBy ${rule.requireAll ? "all of " : ""}${rule.keys.map((k) => k.path).join(", ")}` : rule.type;
  return `policy rule "${rule.scope}" (${what})`;
}
