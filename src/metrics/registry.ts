// Counters, gauges and histograms, and their rendering in the Prometheus text
// exposition format 0.0.4 (what every Prometheus scrapes):
//   # HELP name text        (backslash and newline escaped)
//   # TYPE name counter|gauge|histogram
//   name{label="value",...} 12.5
// A histogram is name_bucket{le="..."} (cumulative, ending with le="+Inf"),
// name_sum and name_count.

export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge" | "histogram";

/** What a family holds at scrape time. */
export interface FamilySnapshot {
  name: string;
  help: string;
  type: MetricType;
  samples: { labels: Labels; value: number }[];
  histograms?: { labels: Labels; buckets: number[]; counts: number[]; sum: number; count: number }[];
}

interface Family {
  snapshot(): FamilySnapshot;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkNames(name: string, labelNames: readonly string[]): void {
  if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
  for (const l of labelNames) if (!LABEL.test(l) || l.startsWith("__")) throw new Error(`metric ${name}: invalid label name ${JSON.stringify(l)}`);
}

/** The values of `labelNames` in `labels`, checked: every name present, nothing else. */
function valuesOf(name: string, labelNames: readonly string[], labels: Labels): string[] {
  const keys = Object.keys(labels);
  if (keys.length !== labelNames.length || labelNames.some((l) => labels[l] === undefined)) {
    throw new Error(`metric ${name} takes labels [${labelNames.join(", ")}], got [${keys.join(", ")}]`);
  }
  return labelNames.map((l) => labels[l]!);
}

const asLabels = (labelNames: readonly string[], values: string[]): Labels => Object.fromEntries(labelNames.map((l, i) => [l, values[i]!]));

abstract class Scalar implements Family {
  protected readonly values = new Map<string, { labels: string[]; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[] = []) {
    checkNames(name, labelNames);
  }
  protected abstract readonly type: "counter" | "gauge";

  protected update(labels: Labels, fn: (v: number) => number): void {
    const vals = valuesOf(this.name, this.labelNames, labels);
    const key = JSON.stringify(vals);
    const cur = this.values.get(key);
    if (cur) cur.value = fn(cur.value);
    else this.values.set(key, { labels: vals, value: fn(0) });
  }

  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(valuesOf(this.name, this.labelNames, labels)))?.value ?? 0;
  }

  snapshot(): FamilySnapshot {
    return {
      name: this.name, help: this.help, type: this.type,
      samples: [...this.values.values()].map((v) => ({ labels: asLabels(this.labelNames, v.labels), value: v.value })),
    };
  }
}

export class Counter extends Scalar {
  protected readonly type = "counter";
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`counter ${this.name} can only go up (inc by ${by})`);
    this.update(labels, (v) => v + by);
  }
}

export class Gauge extends Scalar {
  protected readonly type = "gauge";
  set(labels: Labels, value: number): void {
    this.update(labels, () => value);
  }
  add(labels: Labels, by: number): void {
    this.update(labels, (v) => v + by);
  }
}

export class Histogram implements Family {
  private readonly series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();
  readonly buckets: number[];

  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[], buckets: number[]) {
    checkNames(name, labelNames);
    if (labelNames.includes("le")) throw new Error(`histogram ${name}: "le" is reserved`);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    const vals = valuesOf(this.name, this.labelNames, labels);
    const key = JSON.stringify(vals);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels: vals, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    // Per-bucket counts; render() makes them cumulative.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  snapshot(): FamilySnapshot {
    return {
      name: this.name, help: this.help, type: "histogram", samples: [],
      histograms: [...this.series.values()].map((s) => ({ labels: asLabels(this.labelNames, s.labels), buckets: this.buckets, counts: [...s.counts], sum: s.sum, count: s.count })),
    };
  }
}

export class Registry {
  private readonly families: Family[] = [];
  private readonly collectors: Array<() => FamilySnapshot[] | Promise<FamilySnapshot[]>> = [];

  register<F extends Family>(f: F): F {
    this.families.push(f);
    return f;
  }

  /** Families computed at scrape time (gauges read from the daemon's state). */
  collect(fn: () => FamilySnapshot[] | Promise<FamilySnapshot[]>): void {
    this.collectors.push(fn);
  }

  async render(): Promise<string> {
    const snaps = this.families.map((f) => f.snapshot());
    for (const c of this.collectors) snaps.push(...(await c()));
    return renderExposition(snaps);
  }
}

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Render families in text format 0.0.4. Series are sorted by labels so output is stable. */
export function renderExposition(families: FamilySnapshot[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (seen.has(f.name)) throw new Error(`metric family ${f.name} is rendered twice`);
    seen.add(f.name);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of [...f.samples].sort(byLabels)) out.push(`${f.name}${labelText(s.labels)} ${formatValue(s.value)}`);
    for (const h of [...(f.histograms ?? [])].sort(byLabels)) {
      let cumulative = 0;
      h.buckets.forEach((b, i) => {
        cumulative += h.counts[i] ?? 0;
        out.push(`${f.name}_bucket${labelText({ ...h.labels, le: formatValue(b) })} ${cumulative}`);
      });
      out.push(`${f.name}_bucket${labelText({ ...h.labels, le: "+Inf" })} ${h.count}`);
      out.push(`${f.name}_sum${labelText(h.labels)} ${formatValue(h.sum)}`);
      out.push(`${f.name}_count${labelText(h.labels)} ${h.count}`);
    }
  }
  return out.length ? out.join("\n") + "\n" : "";
}

function byLabels(a: { labels: Labels }, b: { labels: Labels }): number {
  const x = labelText(a.labels);
  const y = labelText(b.labels);
  return x < y ? -1 : x > y ? 1 : 0;
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}
