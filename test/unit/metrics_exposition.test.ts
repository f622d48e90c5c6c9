// The Prometheus text exposition format crib writes, read back by a parser.
import { describe, expect, test } from "bun:test";
import { Counter, escapeLabelValue, formatValue, Gauge, Histogram, Registry, renderExposition } from "../../src/metrics/registry.ts";
import { instrumentRpc, grpcCodeName } from "../../src/cri/rpc_metrics.ts";
import { registry as cribRegistry } from "../../src/metrics/crib_metrics.ts";
import { notFound } from "../../src/errors.ts";
import { parseExposition, sampleValue } from "../helpers/prometheus_text.ts";

describe("exposition format 0.0.4", () => {
  test("HELP and TYPE lines, then samples sorted by labels", async () => {
    const r = new Registry();
    const c = r.register(new Counter("x_requests_total", "Requests.\nSecond line with \\ backslash.", ["method", "code"]));
    c.inc({ method: "b", code: "OK" });
    c.inc({ method: "a", code: "OK" }, 2);
    c.inc({ method: "b", code: "OK" });
    const g = r.register(new Gauge("x_things", "Things."));
    g.set({}, 3.5);
    const text = await r.render();
    expect(text).toBe(
      [
        "# HELP x_requests_total Requests.\\nSecond line with \\\\ backslash.",
        "# TYPE x_requests_total counter",
        'x_requests_total{method="a",code="OK"} 2',
        'x_requests_total{method="b",code="OK"} 2',
        "# HELP x_things Things.",
        "# TYPE x_things gauge",
        "x_things 3.5",
        "",
      ].join("\n"),
    );
    const parsed = parseExposition(text);
    expect(parsed.get("x_requests_total")?.help).toBe("Requests.\nSecond line with \\ backslash.");
    expect(sampleValue(parsed, "x_requests_total", "x_requests_total", { method: "a" })).toBe(2);
  });

  test("label values are escaped (backslash, quote, newline) and read back intact", async () => {
    const r = new Registry();
    const c = r.register(new Counter("x_total", "X.", ["v"]));
    const odd = 'a "quoted" \\path\\ and\nnewline';
    c.inc({ v: odd });
    expect(escapeLabelValue(odd)).toBe('a \\"quoted\\" \\\\path\\\\ and\\nnewline');
    const parsed = parseExposition(await r.render());
    expect(parsed.get("x_total")?.samples[0]?.labels.v).toBe(odd);
  });

  test("histograms: cumulative buckets, +Inf, _sum and _count", async () => {
    const r = new Registry();
    const h = r.register(new Histogram("x_seconds", "Latency.", ["op"], [0.1, 1, 0.5]));
    for (const v of [0.05, 0.3, 0.3, 0.7, 5]) h.observe({ op: "get" }, v);
    const text = await r.render();
    expect(text).toContain('x_seconds_bucket{op="get",le="0.1"} 1\n');
    expect(text).toContain('x_seconds_bucket{op="get",le="0.5"} 3\n');
    expect(text).toContain('x_seconds_bucket{op="get",le="1"} 4\n');
    expect(text).toContain('x_seconds_bucket{op="get",le="+Inf"} 5\n');
    expect(text).toContain('x_seconds_count{op="get"} 5\n');
    const parsed = parseExposition(text);
    expect(parsed.get("x_seconds")?.type).toBe("histogram");
    expect(sampleValue(parsed, "x_seconds", "x_seconds_sum", { op: "get" })).toBeCloseTo(6.35);
  });

  test("special values and bad input", () => {
    expect(formatValue(Number.NaN)).toBe("NaN");
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe("+Inf");
    expect(formatValue(-Infinity)).toBe("-Inf");
    expect(formatValue(1e21)).toBe("1e+21");
    expect(() => new Counter("bad-name", "x")).toThrow();
    expect(() => new Counter("ok", "x", ["__reserved"])).toThrow();
    const c = new Counter("c_total", "x", ["a"]);
    expect(() => c.inc({ b: "1" })).toThrow();
    expect(() => c.inc({ a: "1" }, -1)).toThrow();
    expect(() => renderExposition([{ name: "d", help: "", type: "gauge", samples: [] }, { name: "d", help: "", type: "gauge", samples: [] }])).toThrow();
  });

  test("collectors add families computed at scrape time", async () => {
    const r = new Registry();
    let n = 1;
    r.collect(() => [{ name: "x_live", help: "Live.", type: "gauge", samples: [{ labels: { state: "running" }, value: n }] }]);
    expect(await r.render()).toContain('x_live{state="running"} 1\n');
    n = 7;
    expect(await r.render()).toContain('x_live{state="running"} 7\n');
  });
});

describe("RPC instrumentation", () => {
  test("counts completions by gRPC code and times them", async () => {
    const ok = instrumentRpc("RuntimeService", "UnitTestOk", { kind: "unary" as const, fn: async (_a: number) => "done" })!;
    const bad = instrumentRpc("RuntimeService", "UnitTestBad", { kind: "unary" as const, fn: async (): Promise<string> => { throw notFound("nope"); } })!;
    expect(await ok.fn(1)).toBe("done");
    expect(await ok.fn(2)).toBe("done");
    await expect(bad.fn()).rejects.toThrow("nope");
    expect(instrumentRpc("RuntimeService", "Nothing", undefined)).toBeUndefined();
    const parsed = parseExposition(await cribRegistry.render());
    const labels = { grpc_service: "runtime.v1.RuntimeService", grpc_type: "unary" };
    expect(sampleValue(parsed, "grpc_server_handled_total", "grpc_server_handled_total", { ...labels, grpc_method: "UnitTestOk", grpc_code: "OK" })).toBe(2);
    expect(sampleValue(parsed, "grpc_server_handled_total", "grpc_server_handled_total", { ...labels, grpc_method: "UnitTestBad", grpc_code: "NotFound" })).toBe(1);
    expect(sampleValue(parsed, "grpc_server_handling_seconds", "grpc_server_handling_seconds_bucket", { grpc_method: "UnitTestOk", le: "+Inf" })).toBe(2);
    expect(grpcCodeName(5)).toBe("NotFound");
  });
});
