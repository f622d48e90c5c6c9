// crib on a node: `crib install` (binary + systemd unit), sd_notify to a
// Type=notify unit's socket, and SIGHUP reloading the config.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { criError } from "../helpers/cri.ts";
import { requireBinary, runCrib, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { NotifyReceiver } from "../helpers/notify_receiver.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { tempDir } from "../helpers/tmp.ts";

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("crib install", () => {
  test("--print-unit: a Type=notify unit that leaves the monitor alone on stop", async () => {
    const r = await runCrib(["install", "--print-unit"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    for (const want of [
      "Type=notify",
      "Delegate=yes",
      "KillMode=process",
      "LimitNOFILE=infinity",
      "OOMScoreAdjust=-999",
      "Restart=always",
      "TasksMax=infinity",
      "ExecStart=/usr/local/bin/crib serve",
      "ExecReload=/bin/kill -HUP $MAINPID",
      "WantedBy=multi-user.target",
    ]) {
      expect(lines).toContain(want);
    }
    const other = await runCrib(["install", "--print-unit", "--prefix", "/opt/crib"]);
    expect(other.stdout.split("\n")).toContain("ExecStart=/opt/crib/bin/crib serve");
  });

  test("copies the binary and writes the unit into a temp prefix; a second run changes nothing", async () => {
    const dir = tempDir("crib-install-");
    const prefix = join(dir, "usr");
    const unitDir = join(dir, "etc", "systemd", "system");
    const first = await runCrib(["install", "--prefix", prefix, "--unit-dir", unitDir]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const bin = join(prefix, "bin", "crib");
    const unit = join(unitDir, "crib.service");
    expect(first.stdout).toContain(`installed ${bin}`);
    expect(first.stdout).toContain(`wrote ${unit}`);
    expect(sha256(bin)).toBe(sha256(requireBinary()));
    expect(statSync(bin).mode & 0o777).toBe(0o755);
    const printed = await runCrib(["install", "--print-unit", "--prefix", prefix]);
    expect(readFileSync(unit, "utf8")).toBe(printed.stdout);

    const second = await runCrib(["install", "--prefix", prefix, "--unit-dir", unitDir]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`${bin} is up to date`);
    expect(second.stdout).toContain(`${unit} is up to date`);
    expect(second.stdout).not.toContain("installed");

    // The installed copy is a working crib.
    const v = Bun.spawnSync([bin, "version"]);
    expect(v.stdout.toString()).toContain("crib version");
  });

  test("relative paths are refused", async () => {
    const r = await runCrib(["install", "--prefix", "usr/local"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--prefix must be an absolute path");
  });
});

/** A crib daemon started as systemd would: NOTIFY_SOCKET in its environment. */
async function startNotified(notifySocket: string, extra: Record<string, unknown> = {}) {
  const c = await startCrib({ log: { level: "info" }, ...extra }, undefined, undefined, { NOTIFY_SOCKET: notifySocket });
  return {
    ...c,
    /** Rewrite the config file (socket/root/state kept unless given). */
    rewrite(cfg: Record<string, unknown>) {
      writeFileSync(c.configPath, stringify({ socket: c.socket, root: c.root, state: c.state, ...cfg }));
    },
    async waitLog(text: string, after = 0, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const at = c.logs().indexOf(text, after);
        if (at >= 0) return at;
        await Bun.sleep(20);
      }
      throw new Error(`no log ${JSON.stringify(text)} within ${timeoutMs} ms:\n${c.logs().slice(after)}`);
    },
    async stop() {
      if (c.proc.exitCode === null) await c.stop();
      else c.client.close();
    },
  };
}

describe("sd_notify", () => {
  for (const kind of ["path", "abstract"] as const) {
    test(`READY=1 once serving, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 on SIGTERM (${kind} socket)`, async () => {
      const name = kind === "path" ? join(tempDir("crib-notify-"), "notify.sock") : `@crib-test-notify-${process.pid}-${Date.now()}`;
      const rx = NotifyReceiver.bind(name);
      const crib = await startNotified(name);
      try {
        const ready = await rx.waitFor("READY=1");
        expect(ready.message.split("\n")).toContain(`MAINPID=${crib.proc.pid}`);
        // The socket answers by the time READY=1 is sent.
        const v = await crib.client.call("RuntimeService", "Version", { version: "v1" });
        expect(v.runtime_name).toBe("crib");

        crib.proc.kill("SIGHUP");
        const reloading = await rx.waitFor("RELOADING=1", { skip: ready.index + 1 });
        expect(reloading.message).toMatch(/MONOTONIC_USEC=\d+/);
        await rx.waitFor("READY=1", { skip: reloading.index + 1 });

        crib.proc.kill("SIGTERM");
        await rx.waitFor("STOPPING=1");
        expect(await crib.proc.exited).toBe(0);
      } finally {
        await crib.stop();
        rx.close();
      }
    });
  }
});

let reg: StartedRegistry;
let image: PushedImage;
beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "test/reload:v1", { layers: [busyboxLayer()] });
});
afterAll(async () => {
  await reg.stop();
});

describe("what kubeadm asks of the runtime, through CRI", () => {
  test("Status RuntimeReady, the sandbox image in the verbose info config, ImageStatus then PullImage, ListPodSandbox", async () => {
    const crib = await startCrib({ image: { pauseImage: "registry.k8s.io/pause:3.10", pinned: [] } });
    try {
      // preflight CRI: RuntimeReady must be true (NetworkReady is not looked at).
      const st = await crib.client.call("RuntimeService", "Status", { verbose: false });
      expect(st.status?.conditions.find((c) => c.type === "RuntimeReady")?.status).toBe(true);
      // the sandbox image check: info["config"] is JSON with a sandboxImage key.
      const verbose = await crib.client.call("RuntimeService", "Status", { verbose: true });
      expect((JSON.parse(verbose.info.config!) as { sandboxImage: string }).sandboxImage).toBe("registry.k8s.io/pause:3.10");
      // crictl info (older kubeadm: `crictl info -o go-template --template {{.config.sandboxImage}}`) shows the same key.
      const info = await runCrib(["ctl", "-r", `unix://${crib.socket}`, "info"]);
      expect((JSON.parse(info.stdout) as { config: { sandboxImage: string } }).config.sandboxImage).toBe("registry.k8s.io/pause:3.10");
      // preflight ImagePull: ImageStatus (absent: no image, no error), then PullImage.
      const absent = await crib.client.call("ImageService", "ImageStatus", { image: { image: image.ref }, verbose: false });
      expect(absent.image).toBeNull();
      await crib.client.call("ImageService", "PullImage", { image: { image: image.ref } }, { timeoutMs: 60_000 });
      const present = await crib.client.call("ImageService", "ImageStatus", { image: { image: image.ref }, verbose: false });
      expect(present.image?.id).toBe(image.configDigest);
      // kubeadm reset lists pods to stop and remove.
      const pods = await crib.client.call("RuntimeService", "ListPodSandbox", {});
      expect(pods.items).toEqual([]);
    } finally {
      await crib.stop();
      crib.cleanup();
    }
  });
});

describe("SIGHUP reload", () => {

  test("log level, a registry mirror, pins and the sandbox image take effect; a changed socket is reported, not applied", async () => {
    const rx = NotifyReceiver.bind(join(tempDir("crib-notify-"), "notify.sock"));
    // Nothing listens on 127.0.0.1:1: without a mirror, pulls of this name fail at once.
    const viaMirror = `127.0.0.1:1/test/reload:v1`;
    const crib = await startNotified(rx.name, { log: { level: "info" }, pull: { progressTimeout: "10s" } });
    try {
      await crib.client.call("RuntimeService", "Version", { version: "v1" });
      expect(crib.logs()).not.toContain('"level":"debug"');
      const before = await criError(crib.client.call("ImageService", "PullImage", { image: { image: viaMirror } }, { timeoutMs: 60_000 }));
      expect(before.details).toContain("127.0.0.1:1");

      const mark = crib.logs().length;
      crib.rewrite({
        socket: join(crib.dir, "other.sock"),
        log: { level: "debug" },
        pull: { progressTimeout: "10s" },
        image: { pauseImage: "registry.k8s.io/pause:3.99", pinned: [viaMirror] },
        registries: { mirrors: { "127.0.0.1:1": { endpoint: [`http://${reg.host}`] } } },
      });
      crib.proc.kill("SIGHUP");
      await crib.waitLog('"config reloaded"', mark);
      const warn = await crib.waitLog("need a restart", mark);
      const warnLine = crib.logs().slice(warn).split("\n")[0]!;
      expect(warnLine).toContain('"socket"');
      expect(warnLine).not.toContain("log.level");

      // The mirror now serves the name; the image is pinned by the config.
      const pulled = await crib.client.call("ImageService", "PullImage", { image: { image: viaMirror } }, { timeoutMs: 60_000 });
      expect(pulled.image_ref).toBe(image.configDigest);
      const st = await crib.client.call("ImageService", "ImageStatus", { image: { image: viaMirror }, verbose: false });
      expect(st.image?.pinned).toBe(true);
      // Debug lines appear (each RPC logs one at debug level).
      await crib.waitLog('"level":"debug"', mark);
      // Status reports the new sandbox image the way kubeadm reads it; the socket stays.
      const status = await crib.client.call("RuntimeService", "Status", { verbose: true });
      const cfg = JSON.parse(status.info.config!) as { sandboxImage: string; socket: string };
      expect(cfg.sandboxImage).toBe("registry.k8s.io/pause:3.99");
      expect(cfg.socket).toBe(crib.socket);

      // An invalid file changes nothing and says why.
      const mark2 = crib.logs().length;
      writeFileSync(crib.configPath, "log: { level: loud }\n");
      crib.proc.kill("SIGHUP");
      await crib.waitLog("config reload failed", mark2);
      expect(crib.logs().slice(mark2)).toContain("log.level");
      const again = await crib.client.call("RuntimeService", "Status", { verbose: true });
      expect((JSON.parse(again.info.config!) as { sandboxImage: string }).sandboxImage).toBe("registry.k8s.io/pause:3.99");
    } finally {
      await crib.stop();
      rx.close();
    }
  });
});
