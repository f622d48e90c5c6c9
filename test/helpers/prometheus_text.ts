// A small parser of the Prometheus text format (0.0.4) for tests: checks each
// line's shape and returns families with their samples.
export interface ParsedSample { name: string; labels: Record<string, string>; value: number }
export interface ParsedFamily { name: string; help: string; type: string; samples: ParsedSample[] }

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/;

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : c));
}

function parseValue(v: string): number {
  if (v === "+Inf") return Number.POSITIVE_INFINITY;
  if (v === "-Inf") return Number.NEGATIVE_INFINITY;
  if (v === "NaN") return Number.NaN;
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`bad sample value ${JSON.stringify(v)}`);
  return n;
}

export function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  let current: ParsedFamily | undefined;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      let f = families.get(name);
      if (!f) families.set(name, (f = { name, help: "", type: "untyped", samples: [] }));
      if (kind === "HELP") f.help = unescape(rest);
      else f.type = rest;
      current = f;
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    let rest = m[3] ?? "";
    while (rest !== "") {
      const l = LABEL.exec(rest);
      if (!l) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels[l[1]!] = unescape(l[2]!);
      rest = rest.slice(l[0].length);
    }
    const name = m[1]!;
    const family = current && (name === current.name || name.startsWith(`${current.name}_`)) ? current : families.get(name);
    if (!family) throw new Error(`sample ${name} before its # TYPE line`);
    family.samples.push({ name, labels, value: parseValue(m[4]!) });
  }
  return families;
}

/** The value of the sample `name` whose labels include `labels` (0 when absent). */
export function sampleValue(families: Map<string, ParsedFamily>, family: string, name: string, labels: Record<string, string> = {}): number {
  const f = families.get(family);
  const s = f?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}
