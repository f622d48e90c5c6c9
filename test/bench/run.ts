// Runs benchmarks that compare crib with Debian's containerd in the same run:
//
//   bun test/bench/run.ts [name...] [--runs N]     (npm run bench builds dist/crib first)
//
// With no name the budget runs (it measures through the others' functions); "all"
// runs every benchmark in BENCHMARKS, in order. Runs per benchmark: --runs, else env
// BENCH_RUNS, else each benchmark's default.
//
// Adding a benchmark: write test/bench/<name>.ts exporting a `Benchmark`, import it
// here and append it to BENCHMARKS.
import { existsSync } from "node:fs";
import { CRIB_BIN } from "../helpers/daemon.ts";
import { type StartedRegistry, startRegistry } from "../helpers/registry.ts";
import { budgetBenchmark } from "./budget.ts";
import { CONTAINERD_BIN } from "./containerd.ts";
import { footprintBenchmark } from "./footprint.ts";
import { loadBenchmark } from "./load.ts";
import { podsBenchmark } from "./pods.ts";
import { pullBenchmark } from "./pull.ts";
import { formatTable, type Table } from "./stats.ts";

export interface BenchContext {
  /** Runs asked for on the command line or in BENCH_RUNS; undefined = the benchmark's default. */
  runs: number | undefined;
  /** One docker-registry on 127.0.0.1 shared by all benchmarks, started on first use. */
  registry(): Promise<StartedRegistry>;
  /** Whether dist/crib exists; without it benchmarks report containerd only. */
  cribBuilt: boolean;
  /** A progress line on stderr (tables go to stdout). */
  log(msg: string): void;
  /**
   * Registers a cleanup run if the harness is interrupted (Ctrl-C) while the resource
   * lives; call the returned function once the benchmark released it itself.
   */
  track(what: string, cleanup: () => Promise<unknown>): () => void;
}

export interface Benchmark {
  /** The command-line name, e.g. "pull". */
  name: string;
  /** One line for the list printed by --help. */
  description: string;
  /** Measures and returns its tables; progress goes through ctx.log. */
  run(ctx: BenchContext): Promise<Table[]>;
}

/** Every benchmark, in the order `run.ts all` runs them. */
export const BENCHMARKS: Benchmark[] = [budgetBenchmark, pullBenchmark, podsBenchmark, footprintBenchmark, loadBenchmark];
/** What `run.ts` with no name runs. */
const DEFAULT_BENCHMARKS: Benchmark[] = [budgetBenchmark];

function usage(): string {
  return [
    "usage: bun test/bench/run.ts [name...|all] [--runs N]   (no name: budget)",
    "benchmarks:",
    ...BENCHMARKS.map((b) => `  ${b.name.padEnd(12)} ${b.description}`),
  ].join("\n");
}

function parseArgs(argv: string[]): { names: string[]; runs: number | undefined } {
  const names: string[] = [];
  let runs: number | undefined;
  const envRuns = process.env.BENCH_RUNS;
  if (envRuns !== undefined && envRuns !== "") runs = Number(envRuns);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--help" || a === "-h") {
      console.log(usage());
      process.exit(0);
    } else if (a === "--runs") {
      runs = Number(argv[++i]);
    } else if (a.startsWith("--runs=")) {
      runs = Number(a.slice("--runs=".length));
    } else if (a === "all") {
      names.push(...BENCHMARKS.map((b) => b.name));
    } else {
      names.push(a);
    }
  }
  if (runs !== undefined && (!Number.isInteger(runs) || runs < 1)) throw new Error(`runs must be a positive integer (from --runs or BENCH_RUNS), got ${String(runs)}`);
  return { names, runs };
}

async function main(): Promise<number> {
  const { names, runs } = parseArgs(process.argv.slice(2));
  const selected: Benchmark[] = [];
  for (const name of names.length > 0 ? names : DEFAULT_BENCHMARKS.map((b) => b.name)) {
    const b = BENCHMARKS.find((x) => x.name === name);
    if (b === undefined) {
      console.error(`unknown benchmark "${name}"\n${usage()}`);
      return 2;
    }
    if (!selected.includes(b)) selected.push(b);
  }
  if (!existsSync(CONTAINERD_BIN)) {
    console.error(`${CONTAINERD_BIN} is missing (apt-get install containerd): benchmarks compare crib with it`);
    return 2;
  }
  if (process.getuid?.() !== 0) console.error("warning: containerd and crib need root for overlay mounts; run as root");

  const live = new Map<number, { what: string; cleanup: () => Promise<unknown> }>();
  let nextId = 0;
  let registry: Promise<StartedRegistry> | undefined;
  const ctx: BenchContext = {
    runs,
    cribBuilt: existsSync(CRIB_BIN),
    log: (msg) => console.error(`[bench] ${msg}`),
    registry() {
      registry ??= startRegistry();
      return registry;
    },
    track(what, cleanup) {
      const id = nextId++;
      live.set(id, { what, cleanup });
      return () => void live.delete(id);
    },
  };
  const cleanupAll = async (): Promise<void> => {
    for (const { what, cleanup } of [...live.values()].reverse()) {
      await cleanup().catch((err: unknown) => console.error(`[bench] cleanup of ${what} failed: ${String(err)}`));
    }
    live.clear();
    if (registry !== undefined) await (await registry.catch(() => undefined))?.stop();
  };
  let interrupted = false;
  const onSignal = (sig: string): void => {
    if (interrupted) return;
    interrupted = true;
    console.error(`[bench] ${sig}: cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  if (!ctx.cribBuilt) ctx.log(`${CRIB_BIN} is missing (npm run build): crib columns stay empty`);
  const tables: Table[] = [];
  let failed = 0;
  try {
    for (const b of selected) {
      ctx.log(`${b.name}: ${b.description}`);
      try {
        const out = await b.run(ctx);
        for (const t of out) console.log(`\n${formatTable(t)}`);
        tables.push(...out);
      } catch (err) {
        failed++;
        console.error(`[bench] ${b.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  } finally {
    await cleanupAll();
  }
  if (selected.length > 1 && tables.length > 0) {
    console.log("\n== summary ==");
    for (const t of tables) console.log(`\n${formatTable(t)}`);
  }
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  process.exitCode = await main();
}
