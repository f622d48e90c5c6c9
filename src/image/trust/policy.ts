// The image signature policy (config `policy`): a default rule and rules per
// scope, the most specific scope winning, as operators know from
// containers-policy.json. A scope is a registry host ("registry.example.com",
// "127.0.0.1:5000"), a repository ("registry.example.com/team/app") or a
// repository prefix at a path-component boundary ("registry.example.com/team").
// This file is the pure part: the shape (checked while the config is parsed)
// and scope matching. Keys are read in keys.ts.
import { SchemaError, type Segment } from "../../config/schema.ts";
import { parseReference, repoName, type ImageRef } from "../reference.ts";

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
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

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
        const problem = scopeProblem(scope);
        if (problem) throw new SchemaError(where, problem, a);
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

/** Why a scope is not usable, or undefined when it is. */
export function scopeProblem(scope: string): string | undefined {
  try {
    normaliseScope(scope);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The canonical form of a scope: "host" or "host/path" as image names are
 * normalised (docker.io/busybox -> docker.io/library/busybox).
 */
export function normaliseScope(scope: string): string {
  const slash = scope.indexOf("/");
  const host = slash < 0 ? scope : scope.slice(0, slash);
  if (!HOST.test(host) || !(host.includes(".") || host.includes(":") || host === "localhost")) {
    throw new Error(`scope "${scope}" must start with a registry host (registry.example.com, host:port or localhost), optionally followed by /repository`);
  }
  if (slash < 0) return host === "index.docker.io" ? "docker.io" : host;
  const rest = scope.slice(slash + 1);
  if (/[:@]/.test(rest)) throw new Error(`scope "${scope}" names a tag or digest: a scope is a host, repository or repository prefix`);
  let ref: ImageRef;
  try {
    ref = parseReference(scope);
  } catch (e) {
    throw new Error(`scope "${scope}" is not a repository name: ${(e as Error).message.replace(/^invalid image reference "[^"]*": /, "")}`);
  }
  return repoName(ref);
}

/** Scopes that could match `ref`, most specific first: the repository, its prefixes, the host. */
export function candidateScopes(ref: ImageRef): string[] {
  const parts = ref.path.split("/");
  const out: string[] = [];
  for (let n = parts.length; n >= 1; n--) out.push(`${ref.domain}/${parts.slice(0, n).join("/")}`);
  out.push(ref.domain);
  return out;
}

/** The rule that governs `ref`: the most specific matching scope, else the default. */
export function matchRule<R>(rules: ReadonlyMap<string, R>, fallback: R, ref: ImageRef): { scope: string; rule: R } {
  for (const scope of candidateScopes(ref)) {
    const rule = rules.get(scope);
    if (rule !== undefined) return { scope, rule };
  }
  return { scope: "default", rule: fallback };
}
