// Probe storms: ExecSync as fast as a few kubelet workers can send it, for a
// bounded time (20 s by default; CRIB_STRESS=1: 200 s), mixing quick probes,
// probes with huge output (more than the 16 MiB response cap: cut and
// marked) and probes that time out. Afterwards the daemon and the monitor use
// no more memory than a generous bound over what they used before, go back
// to idle, and no exec'd process is left in the container.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CriError } from "../../src/ctl/client.ts";
import { ContainerState } from "../../src/protocol/types.ts";
import { containerConfig, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, startCrib, shutdownCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { cpuTicks, monitorPid, rssBytes } from "../helpers/leaks.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { eventually, Rng, stressFactor, testSeed } from "../helpers/stress.ts";

const DURATION_MS = 20_000 * stressFactor();
const WORKERS = 6;
const MiB = 1024 * 1024;
/** What the kubelet accepts in one message: the whole ExecSync answer must fit. */
const MAX_MESSAGE = 16 * MiB;
/** Memory growth allowed over the storm: generous (a leak of a few KiB per probe grows far past it at CRIB_STRESS=1). */
const DAEMON_GROWTH = 160 * MiB;
const MONITOR_GROWTH = 160 * MiB;
const TICKS_PER_SECOND = 100;

let reg: StartedRegistry;
let image: PushedImage;
let crib: CribInstance;

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "storm/busybox:1", { layers: [busyboxLayer()] });
  crib = await startCrib({ log: { level: "info" } });
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
});

afterAll(async () => {
  await shutdownCrib(crib);
  await reg?.stop();
});

type Kind = "quick" | "huge" | "both" | "timeout";

/** The processes in the container's pids cgroup (v1 layout, as on the test machines; v2 as a fallback). */
function cgroupProcs(id: string): number[] {
  for (const f of [`/sys/fs/cgroup/pids/crib/crib-${id}/cgroup.procs`, `/sys/fs/cgroup/crib/crib-${id}/cgroup.procs`]) {
    if (existsSync(f)) return readFileSync(f, "utf8").split("\n").filter(Boolean).map(Number);
  }
  throw new Error(`no cgroup.procs for container ${id}`);
}

/** CPU ticks daemon and monitor use over one second. */
async function ticksPerSecond(pids: number[]): Promise<number> {
  const before = pids.map(cpuTicks);
  await Bun.sleep(1000);
  return pids.map(cpuTicks).reduce((a, t, i) => a + t - before[i]!, 0);
}

describe("probe storm", () => {
  test(`ExecSync from ${WORKERS} workers for ${DURATION_MS / 1000}s: huge output capped and marked, timeouts, memory bounded, idle after`, async () => {
    const rng = new Rng(testSeed("probe storm"));
    const { id } = await runContainer(crib.client, podConfig("storm"), containerConfig("target", image.ref, ["sleep", "100000"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
    const exec = (cmd: string[], timeout: number) =>
      crib.client.call("RuntimeService", "ExecSync", { container_id: id, cmd, timeout: BigInt(timeout) }, { timeoutMs: 60_000 });

    const probe = async (kind: Kind): Promise<void> => {
      switch (kind) {
        case "quick": {
          const r = await exec(["sh", "-c", "echo ok; echo warn >&2; exit 3"], 10);
          expect([r.stdout.toString(), r.stderr.toString(), r.exit_code]).toEqual(["ok\n", "warn\n", 3]);
          return;
        }
        case "huge": {
          const r = await exec(["head", "-c", String(20 * MiB), "/dev/zero"], 30);
          expect(r.exit_code).toBe(0);
          expect(r.stdout.length).toBeLessThanOrEqual(MAX_MESSAGE);
          expect(r.stdout.length).toBeGreaterThan(15 * MiB);
          expect(r.stdout.subarray(-200).toString()).toContain("output truncated");
          return;
        }
        case "both": {
          const r = await exec(["sh", "-c", `head -c ${12 * MiB} /dev/zero; head -c ${12 * MiB} /dev/zero >&2`], 30);
          expect(r.stdout.length + r.stderr.length).toBeLessThanOrEqual(MAX_MESSAGE);
          expect(r.stdout.subarray(-200).toString()).toContain("output truncated");
          expect(r.stderr.subarray(-200).toString()).toContain("output truncated");
          return;
        }
        case "timeout": {
          try {
            await exec(["sleep", "30"], 1);
          } catch (e) {
            expect(e instanceof CriError && e.code).toBe(status.DEADLINE_EXCEEDED);
            return;
          }
          throw new Error("a probe that sleeps past its timeout succeeded");
        }
      }
    };

    // Warm up (every kind once), then measure where memory stands.
    for (const k of ["quick", "huge", "both", "timeout"] as const) await probe(k);
    const daemonPid = crib.proc.pid;
    const monPid = monitorPid(crib.state);
    const before = { daemon: rssBytes(daemonPid), monitor: rssBytes(monPid) };

    const counts: Record<Kind, number> = { quick: 0, huge: 0, both: 0, timeout: 0 };
    const deadline = performance.now() + DURATION_MS;
    const started = performance.now();
    const peak = { daemon: before.daemon, monitor: before.monitor };
    const sampler = setInterval(() => {
      peak.daemon = Math.max(peak.daemon, rssBytes(daemonPid));
      peak.monitor = Math.max(peak.monitor, rssBytes(monPid));
    }, 200);
    try {
      await Promise.all(
        Array.from({ length: WORKERS }, async () => {
          while (performance.now() < deadline) {
            const roll = rng.next();
            const kind: Kind = roll < 0.04 ? "huge" : roll < 0.06 ? "both" : roll < 0.14 ? "timeout" : "quick";
            await probe(kind);
            counts[kind]++;
          }
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const seconds = (performance.now() - started) / 1000;

    // Back to idle: no exec'd process left in the container, nothing left behind by the monitor,
    // and daemon plus monitor use (nearly) no CPU.
    await eventually(() => expect(cgroupProcs(id)).toHaveLength(1), 15_000);
    const monDir = join(crib.state, "monitor", "monitor", id);
    expect(readdirSync(monDir).filter((n) => n.startsWith("exec-"))).toEqual([]);
    const idle = await eventually(async () => {
      const t = await ticksPerSecond([daemonPid, monPid]);
      expect(t).toBeLessThan(TICKS_PER_SECOND / 10);
      return t;
    }, 30_000, 0);
    const after = { daemon: rssBytes(daemonPid), monitor: rssBytes(monPid) };
    const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
    console.log(
      `probe storm: ${total} probes in ${seconds.toFixed(1)}s (${(total / seconds).toFixed(1)}/s: ${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(", ")}); ` +
        `RSS daemon ${mb(before.daemon)} -> peak ${mb(peak.daemon)} -> ${mb(after.daemon)}, monitor ${mb(before.monitor)} -> peak ${mb(peak.monitor)} -> ${mb(after.monitor)}; idle ${idle} ticks/s`,
    );
    expect(after.daemon - before.daemon).toBeLessThan(DAEMON_GROWTH);
    expect(after.monitor - before.monitor).toBeLessThan(MONITOR_GROWTH);
    expect((await crib.client.call("RuntimeService", "Version", { version: "v1" })).runtime_name).toBe("crib");
  }, 120_000 + 2 * DURATION_MS);
});
