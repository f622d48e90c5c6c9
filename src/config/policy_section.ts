// The shape of the config's `policy` section (the image signature policy), checked
// while the config is parsed. What a scope means and how rules match images is
// image knowledge: src/image/trust/policy.ts; the key files are read, and the
// scopes checked, when the daemon compiles the policy (src/image/trust/keys.ts).
import { SchemaError, type Segment } from "./schema.ts";

export type RuleType = "accept" | "reject" | "signedBy";

/** One rule as written in the config (normalised: a bare "accept" becomes { type: accept }). */
export interface PolicyRuleConfig {
  type: RuleType;
  /** signedBy: PEM public key files (absolute paths). */
  keys?: string[];
  /** signedBy: every key must have signed the image (default: any one is enough). */
  requireAll?: boolean;
}

export interface PolicyConfig {
  default: PolicyRuleConfig;
  /** Scope -> rule, keys as written in the file. */
  rules: Record<string, PolicyRuleConfig>;
}

export const DEFAULT_POLICY: PolicyConfig = { default: { type: "accept" }, rules: {} };

const RULE_TYPES: readonly RuleType[] = ["accept", "reject", "signedBy"];
const RULE_FIELDS = ["type", "keys", "requireAll"];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Check the `policy` section's shape (the config schema calls this); key files are read later (keys.ts). */
export function checkPolicySection(value: unknown, path: string, at: Segment[]): PolicyConfig {
  if (!isRecord(value)) throw new SchemaError(path, "expected a mapping with default and rules", at);
  const out: PolicyConfig = { default: { type: "accept" }, rules: {} };
  for (const [k, v] of Object.entries(value)) {
    if (k === "default") out.default = checkRule(v, `${path}.default`, [...at, k]);
    else if (k === "rules") {
      if (!isRecord(v)) throw new SchemaError(`${path}.rules`, "expected a mapping of scope to rule", [...at, k]);
      for (const [scope, rule] of Object.entries(v)) {
        const where = `${path}.rules["${scope}"]`;
        const a = [...at, k, scope];
        out.rules[scope] = checkRule(rule, where, a);
      }
    } else throw new SchemaError(`${path}.${k}`, "unknown key (known keys here: default, rules)", [...at, k]);
  }
  return out;
}

function checkRule(value: unknown, path: string, at: Segment[]): PolicyRuleConfig {
  const typeProblem = (t: unknown) => `unknown rule type ${JSON.stringify(t)}: expected one of ${RULE_TYPES.join(", ")}`;
  if (typeof value === "string") {
    if (value === "signedBy") throw new SchemaError(path, "signedBy needs keys: write { type: signedBy, keys: [/path/to/key.pub] }", at);
    if (!RULE_TYPES.includes(value as RuleType)) throw new SchemaError(path, typeProblem(value), at);
    return { type: value as RuleType };
  }
  if (!isRecord(value)) throw new SchemaError(path, `expected a rule such as { type: signedBy, keys: [...] } or accept | reject`, at);
  for (const k of Object.keys(value)) {
    if (!RULE_FIELDS.includes(k)) throw new SchemaError(`${path}.${k}`, `unknown key (known keys here: ${RULE_FIELDS.join(", ")})`, [...at, k]);
  }
  const type = value.type;
  if (type === undefined) throw new SchemaError(`${path}.type`, `is missing: expected one of ${RULE_TYPES.join(", ")}`, at);
  if (typeof type !== "string" || !RULE_TYPES.includes(type as RuleType)) throw new SchemaError(`${path}.type`, typeProblem(type), [...at, "type"]);
  const rule: PolicyRuleConfig = { type: type as RuleType };
  if (type !== "signedBy") {
    if (value.keys !== undefined || value.requireAll !== undefined) {
      const k = value.keys !== undefined ? "keys" : "requireAll";
      throw new SchemaError(`${path}.${k}`, `only a signedBy rule takes ${k}`, [...at, k]);
    }
    return rule;
  }
  const keys = value.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new SchemaError(`${path}.keys`, "a signedBy rule needs a list of one or more public key files", [...at, "keys"]);
  rule.keys = keys.map((k, i) => {
    if (typeof k !== "string" || !k.startsWith("/")) throw new SchemaError(`${path}.keys[${i}]`, `expected an absolute path to a PEM public key, got ${JSON.stringify(k)}`, [...at, "keys", i]);
    return k;
  });
  if (value.requireAll !== undefined) {
    if (typeof value.requireAll !== "boolean") throw new SchemaError(`${path}.requireAll`, "expected true or false", [...at, "requireAll"]);
    rule.requireAll = value.requireAll;
  }
  return rule;
}

