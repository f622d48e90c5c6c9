// The clock of an edge board without an RTC: it starts at 1970 and jumps to the real
// date when NTP answers (and can step back). crib (daemon, monitor) runs under
// libfaketime with the wall clock read from a file the test rewrites; the monotonic
// clock stays real. Nothing may order or expire on the wall clock alone: lists keep
// creation order, a streaming URL lives its TTL, an ExecSync timeout holds, and a
// restart on a clock that went back finds everything as it was.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerState } from "../../src/protocol/types.ts";
import { status } from "@grpc/grpc-js";
import { containerConfig, criError, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, shutdownCrib, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { spdyCommand } from "../helpers/streaming_client.ts";
import { tempDir } from "../helpers/tmp.ts";

const LIBFAKETIME = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"].find((p) => existsSync(p));
/** libfaketime re-reads the file at most this often (seconds). */
const CACHE_S = 1;
const NS_PER_S = 1_000_000_000n;
/** 2000-01-01: a time before it is "still 1970" here. */
const Y2000_NS = 946_684_800n * NS_PER_S;

let reg: StartedRegistry;
let image: PushedImage;
let crib: CribInstance | undefined;
let clockFile: string;
const t = tempConfig();

/** Set crib's wall clock ("@YYYY-MM-DD hh:mm:ss": from then on it runs) and wait until it is read. */
async function setClock(at: string): Promise<void> {
  writeFileSync(clockFile, `@${at}\n`);
  await Bun.sleep(CACHE_S * 1000 + 300);
}

async function start(): Promise<CribInstance> {
  return await startCrib({}, t, undefined, {
    LD_PRELOAD: LIBFAKETIME!,
    FAKETIME_TIMESTAMP_FILE: clockFile,
    FAKETIME_CACHE_DURATION: String(CACHE_S),
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
  });
}

async function podNames(c: CribInstance): Promise<string[]> {
  const { items } = await c.client.call("RuntimeService", "ListPodSandbox", { filter: null });
  return items.map((p) => p.metadata!.name);
}

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "clock/busybox:1", { layers: [busyboxLayer()] });
  clockFile = join(tempDir("crib-clock-"), "now");
  writeFileSync(
    t.configPath,
    JSON.stringify({ socket: t.socket, root: t.root, state: t.state, log: { level: "debug" }, registries: { mirrors: { [reg.host]: { endpoint: [`http://${reg.host}`] } } } }),
  );
});

afterAll(async () => {
  await shutdownCrib(crib);
  await reg?.stop();
});

describe.skipIf(LIBFAKETIME === undefined)("a wall clock that starts at 1970 and jumps", () => {
  let sleeper = "";

  test("crib starts at 1970 and records 1970 times", async () => {
    writeFileSync(clockFile, "@1970-01-01 00:01:00\n");
    crib = await start();
    await crib.client.call("ImageService", "PullImage", { image: { image: image.ref } });
    const { id } = await runContainer(crib.client, podConfig("a"), containerConfig("sleep", image.ref, ["sleep", "3600"]));
    sleeper = id;
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
    expect(BigInt(st.created_at)).toBeLessThan(Y2000_NS);
    await crib.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("b") });
    expect(await podNames(crib)).toEqual(["a", "b"]);
  });

  test("forward 56 years: creation order kept, a streaming URL handed out before the jump still works", async () => {
    const c = crib!;
    const { url } = await c.client.call("RuntimeService", "Exec", { container_id: sleeper, cmd: ["echo", "still here"], stdin: false, stdout: true, stderr: true, tty: false, audit_request_id: "" });
    await setClock("2026-11-25 12:00:00");
    const r = await (await spdyCommand(url, { stdout: true, stderr: true })).done();
    expect(r.stdout).toBe("still here\n");
    await c.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("c") });
    expect(await podNames(c)).toEqual(["a", "b", "c"]);
    const st = await waitStatus(c.client, sleeper, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
    expect(BigInt(st.created_at)).toBeLessThan(Y2000_NS);
  });

  test("back to 1970: a new pod is listed last though it is 'older'; an ExecSync timeout still holds", async () => {
    const c = crib!;
    await setClock("1970-01-01 00:05:00");
    await c.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("d") });
    expect(await podNames(c)).toEqual(["a", "b", "c", "d"]);
    // The 30 s command is cut at its 2 s timeout (the client's own deadline is 20 s).
    const err = await criError(c.client.call("RuntimeService", "ExecSync", { container_id: sleeper, cmd: ["sleep", "30"], timeout: 2n }, { timeoutMs: 20_000 }));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(err.message).toContain("timed out after 2s");
  });

  test("a restart on a clock that went back finds every pod and container as they were", async () => {
    await crib!.stop();
    await setClock("1970-01-01 00:00:30");
    crib = await start();
    expect(await podNames(crib)).toEqual(["a", "b", "c", "d"]);
    const st = await waitStatus(crib.client, sleeper, (s) => s.state === ContainerState.CONTAINER_RUNNING && s);
    expect(st.id).toBe(sleeper);
    const out = await crib.client.call("RuntimeService", "ExecSync", { container_id: sleeper, cmd: ["echo", "ok"], timeout: 10n });
    expect(out.stdout.toString()).toBe("ok\n");
    await crib.client.call("RuntimeService", "StopContainer", { container_id: sleeper, timeout: 1n });
    await waitStatus(crib.client, sleeper, (s) => s.state === ContainerState.CONTAINER_EXITED);
  });
});
