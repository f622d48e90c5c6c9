// The compiled daemon on a temp socket, driven over gRPC like a kubelet.
import { afterAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { lstatSync, mkdirSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CriClient } from "../../src/ctl/client.ts";
import { criError } from "../helpers/cri.ts";
import { CgroupDriver } from "../../src/protocol/types.ts";
import { type CribInstance, runCrib, startCrib, tempConfig, untilServing, waitForSocket } from "../helpers/daemon.ts";

const started: CribInstance[] = [];
async function crib(extra: Record<string, unknown> = {}): Promise<CribInstance> {
  const c = await startCrib(extra);
  started.push(c);
  return c;
}
afterAll(async () => {
  for (const c of started) {
    if (c.proc.exitCode === null) await c.kill();
    c.cleanup();
  }
});


describe("crib serve", () => {
  test("Version, Status and RuntimeConfig over the socket", async () => {
    const c = await crib({ runtime: { cgroupDriver: "systemd" } });
    const v = await c.client.call("RuntimeService", "Version", { version: "v1" });
    expect(v.runtime_name).toBe("crib");
    expect(v.runtime_api_version).toBe("v1");
    expect(v.runtime_version).toMatch(/^\d+\.\d+\.\d+/);

    const s = await c.client.call("RuntimeService", "Status", { verbose: false });
    const conds = Object.fromEntries(s.status!.conditions.map((x) => [x.type, x]));
    expect(conds.RuntimeReady?.status).toBe(true); // runc is installed on the test machines
    expect(conds.NetworkReady).toBeDefined();
    if (!conds.NetworkReady!.status) expect(conds.NetworkReady!.reason).toBe("NetworkPluginNotReady");
    expect(s.info).toEqual({});

    const verbose = await c.client.call("RuntimeService", "Status", { verbose: true });
    const cfg = JSON.parse(verbose.info.config!) as { socket: string; runtime: { cgroupDriver: string } };
    expect(cfg.socket).toBe(c.socket);
    expect(cfg.runtime.cgroupDriver).toBe("systemd");

    const rc = await c.client.call("RuntimeService", "RuntimeConfig", {});
    expect(rc.linux?.cgroup_driver).toBe(CgroupDriver.SYSTEMD);
  });

  test("socket is 0660 and its state dirs are private", async () => {
    const c = await crib();
    await untilServing(c); // the mode is set between bind and the announcement
    const st = lstatSync(c.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(lstatSync(c.root).mode & 0o777).toBe(0o700);
    expect(lstatSync(c.state).mode & 0o777).toBe(0o700);
  });

  test("Status reports RuntimeReady=false with a reason when the OCI runtime is missing", async () => {
    const c = await crib({ runtime: { handlers: { runc: { path: "/nonexistent/runc" } } } });
    const s = await c.client.call("RuntimeService", "Status", { verbose: false });
    const ready = s.status!.conditions.find((x) => x.type === "RuntimeReady")!;
    expect(ready.status).toBe(false);
    expect(ready.reason).toBe("OCIRuntimeNotFound");
    expect(ready.message).toContain("/nonexistent/runc");
  });

  test("an RPC without an implementation answers UNIMPLEMENTED naming it", async () => {
    const c = await crib();
    const err = await criError(c.client.call("RuntimeService", "CheckpointContainer", { container_id: "x", location: "/tmp/x", timeout: 0 }));
    expect(err.code).toBe(status.UNIMPLEMENTED);
    expect(err.details).toContain("CheckpointContainer");
  });

  test("a request that does not decode answers INVALID_ARGUMENT, and the daemon stays up", async () => {
    const c = await crib();
    const Raw = grpc.makeGenericClientConstructor(
      {
        Version: {
          path: "/runtime.v1.RuntimeService/Version",
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      "Raw",
    );
    const raw = new Raw(`unix:${c.socket}`, grpc.credentials.createInsecure()) as unknown as {
      Version(req: Buffer, cb: (err: grpc.ServiceError | null) => void): void;
      close(): void;
    };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => raw.Version(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff]), resolve));
    raw.close();
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toContain("Version: malformed request");
    expect((await c.client.call("RuntimeService", "Version", { version: "v1" })).runtime_name).toBe("crib");
  });

  test("SIGTERM stops it cleanly and removes the socket", async () => {
    const c = await crib();
    expect(existsSync(c.socket)).toBe(true);
    expect(await c.stop()).toBe(0);
    expect(existsSync(c.socket)).toBe(false);
    expect(c.logs()).toContain('"msg":"stopped"');
  });

  test("a stale socket left by a killed daemon is replaced", async () => {
    const first = await crib();
    await first.kill();
    expect(lstatSync(first.socket).isSocket()).toBe(true);
    const c = await startCrib({}, first);
    started.push(c);
    expect(c.logs()).toContain("replaced a stale socket");
    const v = await c.client.call("RuntimeService", "Version", { version: "v1" });
    expect(v.runtime_name).toBe("crib");
  });

  test("a second daemon on a live socket is a clear error and leaves the first serving", async () => {
    const c = await crib();
    const r = await runCrib(["serve", "--config", c.configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`another server is already listening on ${c.socket}`);
    const v = await c.client.call("RuntimeService", "Version", { version: "v1" });
    expect(v.runtime_name).toBe("crib");
  });

  test("a path that is not a socket is refused, not deleted", async () => {
    const t = tempConfig();
    mkdirSync(join(t.dir, "run"), { recursive: true });
    writeFileSync(t.socket, "important");
    const r = await runCrib(["serve", "--config", t.configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("exists and is not a socket");
    expect(await Bun.file(t.socket).text()).toBe("important");
  });

  test("a bad config is a start-up error naming the key and the file", async () => {
    const t = tempConfig({ pull: { maxConcurrentDownloads: "many" } });
    const r = await runCrib(["serve", "--config", t.configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${t.configPath}: pull.maxConcurrentDownloads: expected an integer`);
    const t2 = tempConfig({ colour: "blue" });
    const r2 = await runCrib(["serve", "--config", t2.configPath]);
    expect(r2.stderr).toContain(`${t2.configPath}: colour: unknown key`);
    const r3 = await runCrib(["serve", "--config", "/nonexistent/crib.yaml"]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain("/nonexistent/crib.yaml: cannot read config");
  });
});

describe("crib faces", () => {
  test("version prints version and commit", async () => {
    const r = await runCrib(["version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^crib version \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/commit: [0-9a-f]{7,}|commit: unknown/);
  });

  test("config prints the effective config as YAML", async () => {
    const t = tempConfig({ log: { level: "warn" } });
    const r = await runCrib(["config", "--config", t.configPath]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`socket: ${t.socket}`);
    expect(r.stdout).toContain("level: warn");
    expect(r.stdout).toContain("maxConcurrentDownloads: 3");
  });

  test("ctl version and info talk to the daemon like crictl", async () => {
    const c = await crib();
    const v = await runCrib(["ctl", "--runtime-endpoint", `unix://${c.socket}`, "version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain("RuntimeName:  crib");
    expect(v.stdout).toContain("RuntimeApiVersion:  v1");
    // Without --runtime-endpoint, the socket comes from the config.
    const i = await runCrib(["ctl", "--config", c.configPath, "info"]);
    expect(i.code).toBe(0);
    const info = JSON.parse(i.stdout) as { status: { conditions: { type: string }[] }; config: { socket: string } };
    expect(info.status.conditions.map((x) => x.type)).toEqual(["RuntimeReady", "NetworkReady"]);
    expect(info.config.socket).toBe(c.socket);
  });

  test("ctl against no daemon fails with a clear error", async () => {
    const t = tempConfig();
    const r = await runCrib(["ctl", "-r", `unix://${t.socket}`, "--timeout", "2", "version"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Version: (UNAVAILABLE|DEADLINE_EXCEEDED)/);
  });

  test("unknown commands are usage errors", async () => {
    const r = await runCrib(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });

  test("the binary runs alone, without node_modules or sources", async () => {
    const t = tempConfig();
    const lonely = join(t.dir, "crib");
    await Bun.write(lonely, Bun.file(join(import.meta.dir, "../../dist/crib")));
    const chmod = Bun.spawnSync(["chmod", "+x", lonely]);
    expect(chmod.exitCode).toBe(0);
    const proc = Bun.spawn([lonely, "serve", "--config", t.configPath], { cwd: t.dir, stderr: "pipe" });
    try {
      // Accepting connections, not just bound: the file exists a moment before listen().
      await waitForSocket(proc, t.socket, () => "");
      const client = new CriClient(`unix://${t.socket}`);
      const v = await client.call("RuntimeService", "Version", { version: "v1" });
      client.close();
      expect(v.runtime_name).toBe("crib");
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  });
});
