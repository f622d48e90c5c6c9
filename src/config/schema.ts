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
  | { t: "map"; of: Spec };

export const str = (pattern?: RegExp, hint?: string): Spec => ({ t: "string", pattern, hint });
export const int = (min?: number, max?: number): Spec => ({ t: "int", min, max });
export const bool: Spec = { t: "bool" };
export const duration: Spec = { t: "duration" };
export const oneOf = (...values: string[]): Spec => ({ t: "enum", values });
export const list = (of: Spec): Spec => ({ t: "list", of });
export const obj = (fields: Record<string, Spec>): Spec => ({ t: "object", fields });
export const map = (of: Spec): Spec => ({ t: "map", of });

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
  constructor(readonly path: string, problem: string) {
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
export function validate(spec: Spec, value: unknown, base: unknown, path: string): unknown {
  switch (spec.t) {
    case "string":
      if (typeof value !== "string") throw new SchemaError(path, `expected a string, got ${describe(value)}`);
      if (spec.pattern && !spec.pattern.test(value)) throw new SchemaError(path, `"${value}" is not valid: ${spec.hint ?? `must match ${spec.pattern}`}`);
      return value;
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value)) throw new SchemaError(path, `expected an integer, got ${describe(value)}`);
      if (spec.min !== undefined && value < spec.min) throw new SchemaError(path, `${value} is below the minimum ${spec.min}`);
      if (spec.max !== undefined && value > spec.max) throw new SchemaError(path, `${value} is above the maximum ${spec.max}`);
      return value;
    case "bool":
      if (typeof value !== "boolean") throw new SchemaError(path, `expected true or false, got ${describe(value)}`);
      return value;
    case "duration":
      if (typeof value !== "string") throw new SchemaError(path, `expected a duration such as "1m", got ${describe(value)}`);
      try { parseDuration(value); } catch (e) { throw new SchemaError(path, (e as Error).message); }
      return value;
    case "enum":
      if (typeof value !== "string" || !spec.values.includes(value)) throw new SchemaError(path, `expected one of ${spec.values.join(", ")}, got ${describe(value)}`);
      return value;
    case "list":
      if (!Array.isArray(value)) throw new SchemaError(path, `expected a list, got ${describe(value)}`);
      return value.map((item, i) => validate(spec.of, item, undefined, `${path}[${i}]`));
    case "map": {
      if (!isPlainObject(value)) throw new SchemaError(path, `expected a mapping, got ${describe(value)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = validate(spec.of, v, undefined, join(path, k));
      return out;
    }
    case "object": {
      if (!isPlainObject(value)) throw new SchemaError(path, `expected a mapping, got ${describe(value)}`);
      const baseObj = isPlainObject(base) ? base : {};
      const out: Record<string, unknown> = { ...baseObj };
      for (const [k, v] of Object.entries(value)) {
        const field = spec.fields[k];
        if (!field) throw new SchemaError(join(path, k), `unknown key (known keys here: ${Object.keys(spec.fields).join(", ")})`);
        out[k] = validate(field, v, baseObj[k], join(path, k));
      }
      return out;
    }
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
