// The load benchmark (test/bench/load.ts) small: 10 pods x 2 containers started
// and stopped at once under the kubelet-like poller (stats every 2 s here, so
// a short run asks for them too). Every call must succeed and nothing may be
// left behind; the figures are printed, no timing is checked.
// CRIB_STRESS=1 runs 100 pods.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_LOAD, loadImage, loadTables, runLoad, type LoadReport } from "../bench/load.ts";
import { formatTable } from "../bench/stats.ts";
import { type CribInstance, startCrib } from "../helpers/daemon.ts";
import { monitorList, monitorPid, mountsUnder, runcList, runcRoot } from "../helpers/leaks.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { stressFactor } from "../helpers/stress.ts";
import { tempDir } from "../helpers/tmp.ts";

const PODS = stressFactor() === 1 ? 10 : 100;
let reg: StartedRegistry;
let crib: CribInstance;

beforeAll(async () => {
  reg = await startRegistry();
  crib = await startCrib({ log: { level: "info" } });
});

afterAll(async () => {
  if (crib) {
    const mon = monitorPid(crib.state);
    await crib.stop();
    if (mon > 0) process.kill(mon, "SIGTERM");
    crib.cleanup();
  }
  await reg?.stop();
});

describe("load smoke", () => {
  test(`${PODS} pods x 2 containers at once under a poller: every call succeeds, nothing left`, async () => {
    const image = await loadImage(reg);
    await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
    const report: LoadReport = await runLoad(crib, image.ref, tempDir("crib-load-logs-"), { ...DEFAULT_LOAD, pods: PODS, statsEveryMs: 2000, holdMs: 2500 });
    for (const t of loadTables(report)) console.log(formatTable(t));
    expect(report.failures).toEqual([]);
    for (const rpc of ["RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "StopPodSandbox", "RemoveContainer", "RemovePodSandbox"]) {
      expect(report.latencies.get(rpc)?.length ?? 0, rpc).toBe(rpc.includes("Container") ? 2 * PODS : PODS);
    }
    expect(report.listRounds).toBeGreaterThan(0);
    if (report.statsSkipped === undefined) expect(report.statsRounds).toBeGreaterThan(0);

    expect((await crib.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items).toEqual([]);
    expect((await crib.client.call("RuntimeService", "ListContainers", { filter: null })).containers).toEqual([]);
    expect(mountsUnder(crib.dir)).toEqual([]);
    expect(runcList(runcRoot(crib.state))).toEqual([]);
    expect(await monitorList(crib.state)).toEqual([]);
    const containers = join(crib.root, "containers");
    expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
  }, 300_000);
});
