// Deciding whether the policy lets an image through: at pull time (after the
// manifest is resolved and its digest verified, before any layer is fetched)
// and at CreateContainer time for images already on the node, from the
// signatures stored with them (no registry round trip; results cached per
// manifest digest, repository and key set).
import { signatureInvalid } from "../../errors.ts";
import { refString, repoName, type ImageRef } from "../reference.ts";
import { describeRule, ruleFor, verifySignature, type Policy, type Rule } from "./keys.ts";
import { parsePayload, payloadProblem } from "./simple_signing.ts";
import type { FoundSignature } from "./signatures.ts";

export interface KeyMatch {
  key: string;
  keyType: string;
  fingerprint: string;
  source: string;
}

export interface Verdict {
  rule: Rule;
  /** One line: what let the image through. */
  summary: string;
  /** signedBy: the signature that verified, per key. */
  matched: KeyMatch[];
}

/**
 * The pure decision: does `rule` let the image `ref` (whose content is named
 * by `digests`: the index and/or platform manifest) through, given the
 * signatures found? Throws signature_invalid with the precise reason.
 */
export function evaluate(rule: Rule, ref: ImageRef, digests: readonly string[], signatures: readonly FoundSignature[], looked: readonly string[] = []): Verdict {
  const image = `${refString(ref)}${ref.digest || digests.length === 0 ? "" : ` (${digests[0]})`}`;
  if (rule.type === "accept") return { rule, summary: `accepted by ${describeRule(rule)}`, matched: [] };
  if (rule.type === "reject") throw signatureInvalid(`${image} is rejected by ${describeRule(rule)}`);

  const matched = new Map<string, KeyMatch>();
  const payloadProblems: string[] = [];
  for (const key of rule.keys) {
    for (const s of signatures) {
      if (!verifySignature(key, s.payload, s.signature)) continue;
      let problem: string | undefined;
      try {
        problem = payloadProblem(parsePayload(s.payload), digests, ref);
      } catch (e) {
        problem = (e as Error).message;
      }
      if (problem) {
        payloadProblems.push(`${problem} (signed by ${key.path}, found at ${s.source})`);
        continue;
      }
      matched.set(key.fingerprint, { key: key.path, keyType: key.type, fingerprint: key.fingerprint, source: s.source });
      break;
    }
  }
  const missing = rule.keys.filter((k) => !matched.has(k.fingerprint));
  const ok = rule.requireAll ? missing.length === 0 : matched.size > 0;
  if (ok) {
    const by = [...matched.values()].map((m) => `${m.key} (${m.keyType})`).join(", ");
    return { rule, summary: `signed by ${by}; ${describeRule(rule)}`, matched: [...matched.values()] };
  }
  const tail = `; ${describeRule(rule)}`;
  if (signatures.length === 0) {
    throw signatureInvalid(`no signature found for ${image}${looked.length > 0 ? ` (looked for ${looked.join(" and ")})` : ""}${tail}`);
  }
  if (payloadProblems.length > 0) throw signatureInvalid(`${payloadProblems[0]}${tail}`);
  if (rule.requireAll && matched.size > 0) {
    throw signatureInvalid(`no valid signature of ${image} by ${missing.map((k) => k.path).join(", ")} (the rule requires all of its keys)${tail}`);
  }
  const sources = [...new Set(signatures.map((s) => s.source))].join(", ");
  throw signatureInvalid(`no key matched: ${signatures.length} signature(s) of ${image} found (${sources}), none verifies with the rule's key(s)${tail}`);
}

const MAX_CACHED = 4096;

/** The policy in force (replaced on reload) and the verdict cache for images on the node. */
export class ImageTrust {
  private readonly cache = new Map<string, Verdict | Error>();

  constructor(private current: Policy) {}

  get policy(): Policy {
    return this.current;
  }

  setPolicy(p: Policy): void {
    this.current = p;
    this.cache.clear();
  }

  ruleFor(ref: ImageRef): Rule {
    return ruleFor(this.current, ref);
  }

  /** True when the policy lets every image through (the default): nothing to check. */
  get acceptsAll(): boolean {
    return this.current.default.type === "accept" && [...this.current.rules.values()].every((r) => r.type === "accept");
  }

  /** New signatures were stored for an image: forget verdicts made without them. */
  forget(): void {
    this.cache.clear();
  }

  /**
   * The verdict for an image on the node under `ref`'s rule, cached per
   * digests, repository and key set; `stored` is read only on a miss.
   */
  checkStored(ref: ImageRef, digests: readonly string[], stored: () => FoundSignature[]): Verdict {
    const rule = this.ruleFor(ref);
    if (rule.type !== "signedBy") return evaluate(rule, ref, digests, []);
    const key = [digests.join(","), repoName(ref), ref.tag ?? "", rule.scope, rule.requireAll, ...rule.keys.map((k) => k.fingerprint)].join("|");
    let v = this.cache.get(key);
    if (v === undefined) {
      try {
        v = evaluate(rule, ref, digests, stored());
      } catch (e) {
        v = e as Error;
      }
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      this.cache.set(key, v);
    }
    if (v instanceof Error) throw v;
    return v;
  }
}
