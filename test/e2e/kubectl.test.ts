// A real kubectl (a Go client: client-go's SPDY and WebSocket executors) against crib's
// streaming server. test/helpers/fake_apiserver.ts plays API server and kubelet: it
// answers kubectl's pod GET, asks crib for the streaming URL over CRI and proxies the
// upgrade to it. Skipped where kubectl is not installed (Debian does not package a
// current one; CI machines may lack it).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerState } from "../../src/protocol/types.ts";
import { containerConfig, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, shutdownCrib, startCrib } from "../helpers/daemon.ts";
import { startFakeApiServer, type FakeApiServer } from "../helpers/fake_apiserver.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { freePort, startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import type { TarEntry } from "../helpers/tar.ts";
import { tempDir } from "../helpers/tmp.ts";

// CRIB_KUBECTL picks another build (this machine also has 1.27-1.33 side by side).
const KUBECTL = [process.env.CRIB_KUBECTL ?? "", "/usr/bin/kubectl", "/usr/local/bin/kubectl"].find((p) => p !== "" && existsSync(p));
const PAGE = "served through kubectl port-forward\n";

let reg: StartedRegistry;
let image: PushedImage;
let crib: CribInstance | undefined;
let api: FakeApiServer;
let kubeconfig: string;
let attachSeq = 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function kubectl(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const proc = Bun.spawn([KUBECTL!, "--kubeconfig", kubeconfig, "--server", api.url, "--request-timeout", "20s", ...args], {
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  if (KUBECTL === undefined) return;
  reg = await startRegistry();
  const files: TarEntry[] = [
    { type: "dir", path: "www/" },
    { type: "file", path: "www/index.html", data: PAGE },
  ];
  image = await pushImage(reg, "kubectl/busybox:1", { layers: [[...busyboxLayer(), ...files]] });
  crib = await startCrib();
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref } });
  const pod = podConfig("web");
  const shell = await runContainer(crib.client, pod, containerConfig("shell", image.ref, ["sleep", "100000"]));
  const { container_id: web } = await crib.client.call("RuntimeService", "CreateContainer", {
    pod_sandbox_id: shell.podId,
    config: containerConfig("httpd", image.ref, ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]),
    sandbox_config: pod,
  });
  await crib.client.call("RuntimeService", "StartContainer", { container_id: web });
  for (const id of [shell.id, web]) await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
  kubeconfig = join(tempDir("crib-kubectl-"), "config");
  writeFileSync(kubeconfig, "apiVersion: v1\nkind: Config\n");
  api = await startFakeApiServer(crib.client, { namespace: "default", name: "web", podSandboxId: shell.podId, containers: { shell: shell.id, httpd: web } });
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await shutdownCrib(crib);
  crib?.cleanup();
  await reg?.stop();
});

describe.skipIf(KUBECTL === undefined)("kubectl against crib's streaming server", () => {
  // kubectl 1.31+ tries WebSocket (v5.channel.k8s.io) first; this turns it off for SPDY/3.1.
  for (const [transport, env] of [["WebSocket", {}], ["SPDY/3.1", { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" }]] as const) {
    test(`exec over ${transport}: both streams apart and the exit code`, async () => {
      const r = await kubectl(["exec", "web", "-c", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], { env });
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr.split("\n").filter((l) => !/command terminated/.test(l)).join("\n") }).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    });

    test(`exec -it over ${transport}: a terminal of the client's size`, async () => {
      // script(1) gives kubectl a terminal of its own, sized here before kubectl starts.
      const cmd = `stty cols 100 rows 37; ${KUBECTL} --kubeconfig ${kubeconfig} --server ${api.url} exec -it web -c shell -- sh -c 'stty size; tty; exit 4'`;
      const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      clearTimeout(timer);
      expect(out).toContain("37 100");
      expect(out).toMatch(/\/dev\/pts\/\d+/);
      expect(code).toBe(4);
    });

    test(`exec -i over ${transport}: 4 MiB of binary through cat come back byte for byte (kubectl cp's path)`, async () => {
      const data = new Uint8Array(4 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
      const proc = Bun.spawn([KUBECTL!, "--kubeconfig", kubeconfig, "--server", api.url, "exec", "-i", "web", "-c", "shell", "--", "cat"], { stdin: data, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
      const [out, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), proc.exited]);
      clearTimeout(timer);
      expect(code).toBe(0);
      expect(out.byteLength).toBe(data.length);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(data))).toBe(0);
    });

    test(`exec -i over ${transport}: stdin reaches the command and its end closes it`, async () => {
      const input = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join("\n") + "\n";
      const r = await kubectl(["exec", "-i", "web", "-c", "shell", "--", "sh", "-c", "wc -l; cat > /dev/null"], { stdin: input, env });
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe("2000");
    });
  }

  for (const [transport, env] of [["WebSocket", {}], ["SPDY/3.1", { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" }]] as const) {
    test(`attach -i over ${transport}: stdin in, output out, the container's end ends it`, async () => {
      const c = crib!;
      const name = `reader${++attachSeq}`;
      const pod = podConfig(`attach${attachSeq}`);
      const { pod_sandbox_id } = await c.client.call("RuntimeService", "RunPodSandbox", { config: pod });
      const { container_id } = await c.client.call("RuntimeService", "CreateContainer", {
        pod_sandbox_id,
        config: { ...containerConfig(name, image.ref, ["sh", "-c", "read a; read b; echo got:$a,$b"]), stdin: true, stdin_once: true },
        sandbox_config: pod,
      });
      await c.client.call("RuntimeService", "StartContainer", { container_id });
      const pods = await startFakeApiServer(c.client, { namespace: "default", name: `attach${attachSeq}`, podSandboxId: pod_sandbox_id, containers: { [name]: container_id } });
      try {
        const proc = Bun.spawn([KUBECTL!, "--kubeconfig", kubeconfig, "--server", pods.url, "attach", "-i", `attach${attachSeq}`, "-c", name], {
          stdin: new TextEncoder().encode("one\ntwo\n"),
          stdout: "pipe",
          stderr: "pipe",
          env: { ...process.env, ...env },
        });
        const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
        const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
        clearTimeout(timer);
        expect({ out, code }).toEqual({ out: "got:one,two\n", code: 0 });
        expect(err).not.toContain("error");
      } finally {
        await pods.stop();
      }
    });
  }

  test("port-forward: a local port reaches the pod's localhost", async () => {
    const port = await freePort();
    const proc = Bun.spawn([KUBECTL!, "--kubeconfig", kubeconfig, "--server", api.url, "port-forward", "pod/web", `${port}:8080`], { stdout: "pipe", stderr: "pipe" });
    try {
      let body = "";
      for (let i = 0; i < 100 && body === ""; i++) {
        body = await fetch(`http://127.0.0.1:${port}/index.html`).then((r) => r.text(), () => "");
        if (body === "") await Bun.sleep(100);
      }
      expect(body).toBe(PAGE);
      // A second request on a new connection: kubectl opens a new stream pair for it.
      expect(await (await fetch(`http://127.0.0.1:${port}/index.html`)).text()).toBe(PAGE);
    } finally {
      proc.kill();
      await proc.exited;
    }
  });
});
