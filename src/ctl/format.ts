// Output helpers for crib ctl: sizes, durations, tables, and JSON/YAML in crictl's shape.
import { stringify as toYaml } from "yaml";
import { enumTable, messageTable } from "../protocol/proto.ts";
import type { FieldEntry } from "../protocol/tables.ts";

export function humanBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)}${units[i]}`;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join("").trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 13);
}

/** An id as a table shows it: short, unless --no-trunc. */
export function idCell(id: string, noTrunc: boolean): string {
  return noTrunc ? id : shortId(id);
}

/** protoc's JSON name of a field: snake_case to lowerCamelCase. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function fieldValue(type: string, v: unknown): unknown {
  if (typeof v === "bigint") return v.toString(); // 64-bit integers are strings in proto JSON
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (typeof v === "object" && v !== null) return messageJson(type, v as Record<string, unknown>);
  if (typeof v === "number") return enumTable(type)?.[v] ?? v;
  return v;
}

function messageJson(typeName: string, v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, , type, mode] of messageTable(typeName) as FieldEntry[]) {
    const x = v[name];
    if (x === null || x === undefined) continue; // an unset message field is left out
    if (mode === 2) out[jsonName(name)] = Object.fromEntries(Object.entries(x as Record<string, unknown>).map(([k, e]) => [k, fieldValue(type, e)]));
    else if (mode === 1) out[jsonName(name)] = (x as unknown[]).map((e) => fieldValue(type, e));
    else out[jsonName(name)] = fieldValue(type, x);
  }
  return out;
}

/**
 * A decoded CRI message as crictl prints it with -o json/yaml (Go's protojson with
 * EmitDefaultValues): lowerCamelCase names, enums by name, 64-bit integers as strings,
 * scalars at their defaults included, unset messages left out.
 */
export function protoJson(typeName: string, value: object): Record<string, unknown> {
  return messageJson(typeName, value as Record<string, unknown>);
}

/** The verbose `info` map of a status answer: JSON values parsed (as crictl shows them), other text kept. */
export function verboseInfo(info: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(info).map(([k, v]) => {
    try {
      return [k, JSON.parse(v) as unknown];
    } catch {
      return [k, v];
    }
  }));
}

/** JSON (two-space indent, as crictl) or YAML of a plain object. */
export function structured(format: string, value: unknown): string {
  return format === "yaml" ? toYaml(value) : JSON.stringify(value, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x), 2) + "\n";
}
