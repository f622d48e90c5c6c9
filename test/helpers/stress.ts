// Knobs shared by the tests that try hard to break crib (crash loops, probe
// storms, fuzzing, load):
//
//   CRIB_STRESS=1     multiply iterations and durations by 10 (CRIB_STRESS=N>1: by N)
//   CRIB_SEED=<int>   replay a seeded run; every seeded test prints the seed it used
//
// The default (no CRIB_STRESS) keeps each test's cost small enough for CI.

/** How much heavier than the CI default to run: 1, 10 for CRIB_STRESS=1, or N for CRIB_STRESS=N. */
export function stressFactor(): number {
  const raw = process.env.CRIB_STRESS;
  if (raw === undefined || raw === "" || raw === "0") return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) return 1;
  return n === 1 ? 10 : Math.floor(n);
}

/** The seed for a seeded test: CRIB_SEED if set, else a fresh one. Printed, so a failure can be replayed. */
export function testSeed(name: string): number {
  const fromEnv = process.env.CRIB_SEED;
  const seed = fromEnv !== undefined && fromEnv !== "" ? Number(fromEnv) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  console.log(`${name}: seed ${seed} (replay with CRIB_SEED=${seed}; CRIB_STRESS=1 runs it ${stressFactor() === 1 ? 10 : stressFactor()}x heavier)`);
  return seed;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("Rng.pick: empty list");
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Poll `check` until it returns without throwing; rethrows its last error after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (performance.now() > deadline) throw e;
    }
    await Bun.sleep(everyMs);
  }
}
