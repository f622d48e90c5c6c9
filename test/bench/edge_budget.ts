// Issue 16's figures for two builds side by side, runs interleaved: spawn to the first
// answered Version, daemon RSS after a 2 s settle, and `crib ctl version` wall time.
// Run: bun test/bench/edge_budget.ts OLD_BINARY NEW_BINARY [runs]
// No npm imports (the config is JSON, which is YAML), so the compiled binary can run it:
// BUN_BE_BUN=1 dist/crib test/bench/edge_budget.ts OLD NEW
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CriClient } from "../../src/ctl/client.ts";

function tempConfig(): { dir: string; configPath: string; socket: string } {
  const dir = mkdtempSync(join(tmpdir(), "crib-edge-"));
  const socket = join(dir, "run", "crib.sock");
  const configPath = join(dir, "crib.yaml");
  writeFileSync(configPath, JSON.stringify({ socket, root: join(dir, "lib"), state: join(dir, "run"), log: { level: "info" } }));
  return { dir, configPath, socket };
}

const [oldBin, newBin, runsArg] = process.argv.slice(2);
if (!oldBin || !newBin) throw new Error("usage: bun test/bench/edge_budget.ts OLD NEW [runs]");
const runs = Number(runsArg ?? "7");
const CTL_RUNS = 20;

const rssKiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(1)}..${Math.max(...xs).toFixed(1)}`;

async function once(bin: string, withCtl: boolean): Promise<{ startMs: number; rssMiB: number; ctlMs: number[] }> {
  const t = tempConfig();
  const started = performance.now();
  const proc = Bun.spawn([bin, "serve", "--config", t.configPath], { stdout: "ignore", stderr: "ignore" });
  const client = new CriClient(`unix://${t.socket}`, 1000);
  let startMs = NaN;
  for (;;) {
    try {
      await client.call("RuntimeService", "Version", { version: "v1" });
      startMs = performance.now() - started;
      break;
    } catch {
      await Bun.sleep(2);
    }
  }
  client.close();
  await Bun.sleep(2000);
  const rssMiB = rssKiB(proc.pid) / 1024;
  const ctlMs: number[] = [];
  if (withCtl) {
    for (let i = 0; i < CTL_RUNS; i++) {
      const t0 = performance.now();
      const r = Bun.spawnSync([bin, "ctl", "-r", `unix://${t.socket}`, "version"], { stdout: "ignore", stderr: "ignore" });
      if (r.exitCode !== 0) throw new Error(`${bin} ctl version failed`);
      ctlMs.push(performance.now() - t0);
    }
  }
  proc.kill("SIGTERM");
  await proc.exited;
  rmSync(t.dir, { recursive: true, force: true });
  return { startMs, rssMiB, ctlMs };
}

const results = new Map<string, { start: number[]; rss: number[]; ctl: number[] }>([[oldBin, { start: [], rss: [], ctl: [] }], [newBin, { start: [], rss: [], ctl: [] }]]);
for (let i = 0; i < runs; i++) {
  for (const bin of i % 2 === 0 ? [oldBin, newBin] : [newBin, oldBin]) {
    const r = await once(bin, i < 2);
    const acc = results.get(bin)!;
    acc.start.push(r.startMs);
    acc.rss.push(r.rssMiB);
    acc.ctl.push(...r.ctlMs);
  }
}
for (const [bin, r] of results) {
  console.log(`${bin}: start-up to first Version median ${median(r.start).toFixed(1)} ms (${spread(r.start)}), idle RSS median ${median(r.rss).toFixed(1)} MiB (${spread(r.rss)}), ctl version median ${median(r.ctl).toFixed(1)} ms (${spread(r.ctl)}, n=${r.ctl.length})`);
}
