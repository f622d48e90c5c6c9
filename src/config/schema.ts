// A small declarative schema for the config file: each setting has a type and
// an embedded default, so the file only holds what differs, and any unknown key
// or wrong type is reported with its dotted path.

export type Spec =
  | { t: "string"; pattern?: RegExp; hint?: string }
  | { t: "int"; min?: number; max?: number }
  | { t: "bool" }
  | { t: "duration" }
  | { t: "enum"; values: readonly string[] }
  | { t: "list"; of: Spec }
  | { t: "object"; fields: Record<string, Spec> }
  | { t: "map"; of: Spec }
  /** A section with its own checker (the image policy): it throws SchemaError with the path it is given. */
  | { t: "custom"; check: (value: unknown, path: string, at: Segment[]) => unknown };

/** Where a value sits in the file: keys and list indexes from the top (for line numbers). */
export type Segment = string | number;

export const str = (pattern?: RegExp, hint?: string): Spec => ({ t: "string", pattern, hint });
export const int = (min?: number, max?: number): Spec => ({ t: "int", min, max });
export const bool: Spec = { t: "bool" };
export const duration: Spec = { t: "duration" };
export const oneOf = (...values: string[]): Spec => ({ t: "enum", values });
export const list = (of: Spec): Spec => ({ t: "list", of });
export const obj = (fields: Record<string, Spec>): Spec => ({ t: "object", fields });
export const map = (of: Spec): Spec => ({ t: "map", of });
export const custom = (check: (value: unknown, path: string, at: Segment[]) => unknown): Spec => ({ t: "custom", check });

const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parse a Go-style duration ("90s", "1m30s", "250ms") into milliseconds. */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) throw new Error(`"${text}" is not a duration (use e.g. 30s, 5m, 1h30m, 250ms)`);
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
  return total;
}

export class SchemaError extends Error {
  constructor(readonly path: string, problem: string, readonly at: Segment[] = []) {
    super(`${path || "(top level)"}: ${problem}`);
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "a mapping" : `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Check `value` against `spec` and return it merged over `base` (the default).
 * Objects merge key by key; maps and lists from the file replace the default.
 */
export function validate(spec: Spec, value: unknown, base: unknown, path: string, at: Segment[] = []): unknown {
  const fail = (problem: string, p = path, a = at) => new SchemaError(p, problem, a);
  switch (spec.t) {
    case "string":
      if (typeof value !== "string") throw fail(`expected a string, got ${describe(value)}`);
      if (spec.pattern && !spec.pattern.test(value)) throw fail(`"${value}" is not valid: ${spec.hint ?? `must match ${spec.pattern}`}`);
      return value;
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value)) throw fail(`expected an integer, got ${describe(value)}`);
      if (spec.min !== undefined && value < spec.min) throw fail(`${value} is below the minimum ${spec.min}`);
      if (spec.max !== undefined && value > spec.max) throw fail(`${value} is above the maximum ${spec.max}`);
      return value;
    case "bool":
      if (typeof value !== "boolean") throw fail(`expected true or false, got ${describe(value)}`);
      return value;
    case "duration":
      if (typeof value !== "string") throw fail(`expected a duration such as "1m", got ${describe(value)}`);
      try { parseDuration(value); } catch (e) { throw fail((e as Error).message); }
      return value;
    case "enum":
      if (typeof value !== "string" || !spec.values.includes(value)) throw fail(`expected one of ${spec.values.join(", ")}, got ${describe(value)}`);
      return value;
    case "list":
      if (!Array.isArray(value)) throw fail(`expected a list, got ${describe(value)}`);
      return value.map((item, i) => validate(spec.of, item, undefined, `${path}[${i}]`, [...at, i]));
    case "map": {
      if (!isPlainObject(value)) throw fail(`expected a mapping, got ${describe(value)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = validate(spec.of, v, undefined, join(path, k), [...at, k]);
      return out;
    }
    case "object": {
      if (!isPlainObject(value)) throw fail(`expected a mapping, got ${describe(value)}`);
      const baseObj = isPlainObject(base) ? base : {};
      const out: Record<string, unknown> = { ...baseObj };
      for (const [k, v] of Object.entries(value)) {
        const field = spec.fields[k];
        if (!field) throw fail(`unknown key (known keys here: ${Object.keys(spec.fields).join(", ")})`, join(path, k), [...at, k]);
        out[k] = validate(field, v, baseObj[k], join(path, k), [...at, k]);
      }
      return out;
    }
    case "custom":
      return spec.check(value, path, at);
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
