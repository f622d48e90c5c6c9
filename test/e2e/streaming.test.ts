// Exec, Attach and PortForward on the compiled daemon: the RPCs hand out URLs, and a
// client written for the tests (test/helpers/streaming_client.ts) speaks SPDY/3.1 and
// WebSocket to them, as kubectl, crictl and the kubelet do. Containers run under real
// runc and the monitor.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerState } from "../../src/protocol/types.ts";
import type { Out, ContainerConfig, PodSandboxConfig } from "../../src/protocol/types.ts";
import { containerConfig, criError, podConfig, runContainer, statusOf, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, requireBinary, startCrib } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, type PushedImage } from "../helpers/images.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";
import { SpdyTestClient, spdyCommand, spdyPortForward, upgradeRequest, wsCommand, type CommandSession } from "../helpers/streaming_client.ts";
import type { TarEntry } from "../helpers/tar.ts";

let reg: StartedRegistry;
let crib: CribInstance;
let image: PushedImage;
/** A running `sleep` container to exec in. */
let shell: string;

const EXTRA_APPLETS = ["stty", "kill"];
const PAGE = "hello from httpd\n";

function monitorPid(c: CribInstance): number {
  const f = join(c.state, "monitor", "monitor.pid");
  return existsSync(f) ? Number(readFileSync(f, "utf8").trim()) : 0;
}

async function stopCrib(c: CribInstance): Promise<void> {
  for (const p of (await c.client.call("RuntimeService", "ListPodSandbox", { filter: null })).items) {
    await c.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
  }
  const mon = monitorPid(c);
  await c.stop();
  if (mon) process.kill(mon, "SIGTERM");
  c.cleanup();
}

beforeAll(async () => {
  reg = await startRegistry();
  const base = busyboxLayer().filter((e) => !EXTRA_APPLETS.some((a) => e.path === `bin/${a}`));
  const extra: TarEntry[] = [
    ...EXTRA_APPLETS.map((a): TarEntry => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" })),
    { type: "dir", path: "www/" },
    { type: "file", path: "www/index.html", data: PAGE },
  ];
  image = await pushImage(reg, "stream/busybox:1", { layers: [[...base, ...extra]] });
  crib = await startCrib();
  await crib.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
  shell = (await runContainer(crib.client, podConfig("shell"), containerConfig("shell", image.ref, ["sleep", "100000"]))).id;
  await waitStatus(crib.client, shell, (s) => s.state === ContainerState.CONTAINER_RUNNING);
}, 120_000);

afterAll(async () => {
  if (crib) await stopCrib(crib);
  await reg?.stop();
});

async function execUrl(cmd: string[], o: { stdin?: boolean; stdout?: boolean; stderr?: boolean; tty?: boolean }, id = shell): Promise<string> {
  const r = await crib.client.call("RuntimeService", "Exec", {
    container_id: id, cmd, stdin: o.stdin ?? false, stdout: o.stdout ?? true, stderr: o.stderr ?? !o.tty, tty: o.tty ?? false, audit_request_id: "",
  });
  expect(r.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{22,}$/);
  return r.url;
}

async function attachUrl(id: string, o: { stdin?: boolean; stdout?: boolean; stderr?: boolean; tty?: boolean }): Promise<string> {
  const r = await crib.client.call("RuntimeService", "Attach", {
    container_id: id, stdin: o.stdin ?? false, stdout: o.stdout ?? true, stderr: o.stderr ?? !o.tty, tty: o.tty ?? false, audit_request_id: "",
  });
  return r.url;
}

/** Start a container and wait until it runs. */
async function running(pod: Out<PodSandboxConfig>, c: Out<ContainerConfig>): Promise<{ podId: string; id: string }> {
  const r = await runContainer(crib.client, pod, c);
  await waitStatus(crib.client, r.id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
  return r;
}

/** The CRI log's records [stream, tag, content]; a terminal's content may hold a carriage return. */
async function readLog(path: string): Promise<[string, string, string][]> {
  const text = await Bun.file(path).text().catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => {
    const m = /^(\S+) (stdout|stderr) (F|P) (.*)$/s.exec(l);
    if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(l)}`);
    return [m[2]!, m[3]!, m[4]!.replace(/\r$/, "")];
  });
}

/** Poll the CRI log until `pred` holds on its lines. */
async function waitLog(path: string, pred: (lines: [string, string, string][]) => boolean): Promise<[string, string, string][]> {
  for (let i = 0; ; i++) {
    const lines = await readLog(path);
    if (pred(lines)) return lines;
    if (i > 400) throw new Error(`log ${path} never matched; it has ${JSON.stringify(lines)}`);
    await Bun.sleep(50);
  }
}

describe("exec over SPDY/3.1", () => {
  test("stdout and stderr apart, and a non-zero exit as NonZeroExitCode with the code", async () => {
    const s = await spdyCommand(await execUrl(["sh", "-c", "echo out; echo err >&2; exit 3"], {}), { stdout: true, stderr: true });
    expect(s.protocol).toBe("v4.channel.k8s.io");
    const r = await s.done();
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect(r.status?.status).toBe("Failure");
    expect(r.status?.reason).toBe("NonZeroExitCode");
    expect(r.status?.details?.causes).toEqual([{ reason: "ExitCode", message: "3" }]);

    const ok = await (await spdyCommand(await execUrl(["echo", "fine"], {}), { stdout: true, stderr: true })).done();
    expect(ok.stdout).toBe("fine\n");
    expect(ok.status).toEqual({ metadata: {}, status: "Success" } as unknown as typeof ok.status);
  });

  test("stdin EOF closes the process's stdin", async () => {
    const s = await spdyCommand(await execUrl(["cat"], { stdin: true }), { stdin: true, stdout: true, stderr: true });
    s.write("hello\n");
    await s.waitStdout("hello\n");
    s.write("world\n");
    s.closeStdin();
    const r = await s.done();
    expect(r.stdout).toBe("hello\nworld\n");
    expect(r.status?.status).toBe("Success");
  });

  test("TTY: one output stream, resize reaches the terminal, exit code kept", async () => {
    const s = await spdyCommand(await execUrl(["sh"], { stdin: true, tty: true }), { stdin: true, stdout: true, tty: true });
    s.resize(100, 37);
    s.write("stty size; exit 5\n");
    const r = await s.done();
    expect(r.stdout).toContain("37 100");
    expect(r.status?.reason).toBe("NonZeroExitCode");
    expect(r.status?.details?.causes?.[0]?.message).toBe("5");
  });

  test("v3 and v2 clients: plain-text errors", async () => {
    const v3 = await spdyCommand(await execUrl(["sh", "-c", "echo v3; exit 2"], {}), { stdout: true, stderr: true }, ["v3.channel.k8s.io"]);
    expect(v3.protocol).toBe("v3.channel.k8s.io");
    const r = await v3.done();
    expect(r.stdout).toBe("v3\n");
    expect(r.errorText).toContain("non-zero exit code");
    const v2 = await spdyCommand(await execUrl(["true"], {}), { stdout: true, stderr: true }, ["v2.channel.k8s.io"]);
    expect((await v2.done()).errorText).toBe("");
  });

  test("a command that cannot run fails with runc's reason", async () => {
    const r = await (await spdyCommand(await execUrl(["/no/such/binary"], {}), { stdout: true, stderr: true })).done();
    expect(r.status?.status).toBe("Failure");
    expect(r.stderr).toContain("no/such/binary");
  });
});

describe("exec over WebSocket", () => {
  test("v5: stdin closed with the close signal", async () => {
    const s = await wsCommand(await execUrl(["cat"], { stdin: true }), { stdin: true, stdout: true, stderr: true });
    expect(s.protocol).toBe("v5.channel.k8s.io");
    s.write("over websocket\n");
    s.closeStdin();
    const r = await s.done();
    expect(r.stdout).toBe("over websocket\n");
    expect(r.status?.status).toBe("Success");
  });

  test("v4: output and exit code", async () => {
    const s = await wsCommand(await execUrl(["sh", "-c", "echo hi; echo oops >&2; exit 4"], {}), { stdout: true, stderr: true }, ["v4.channel.k8s.io"]);
    expect(s.protocol).toBe("v4.channel.k8s.io");
    const r = await s.done();
    expect(r.stdout).toBe("hi\n");
    expect(r.stderr).toBe("oops\n");
    expect(r.status?.details?.causes?.[0]?.message).toBe("4");
  });

  test("TTY with resize", async () => {
    const s = await wsCommand(await execUrl(["sh"], { stdin: true, tty: true }), { stdin: true, stdout: true, tty: true });
    s.resize(90, 20);
    s.write("stty size; exit\n");
    const r = await s.done();
    expect(r.stdout).toContain("20 90");
    expect(r.status?.status).toBe("Success");
  });
});

describe("attach", () => {
  test("reads the output of a running container and writes its stdin; the log still gets every line", async () => {
    const { id } = await running(podConfig(), containerConfig("echoer", image.ref, ["sh", "-c", "echo ready; while read l; do echo got:$l; done"], { stdin: true }));
    const st = await statusOf(crib.client, id);
    await waitLog(st!.log_path, (l) => l.some(([, , t]) => t === "ready"));
    const s = await spdyCommand(await attachUrl(id, { stdin: true }), { stdin: true, stdout: true, stderr: true });
    for (const word of ["one", "two", "three"]) {
      s.write(`${word}\n`);
      await s.waitStdout(`got:${word}\n`);
    }
    s.close();
    // Detaching does not disturb the container: a second attach goes on where it is.
    const again = await spdyCommand(await attachUrl(id, { stdin: true }), { stdin: true, stdout: true, stderr: true });
    again.write("four\n");
    await again.waitStdout("got:four\n");
    expect(again.stdout()).not.toContain("got:one");
    const lines = await waitLog(st!.log_path, (l) => l.some(([, , t]) => t === "got:four"));
    expect(lines.filter(([s]) => s === "stdout").map(([, , t]) => t)).toEqual(["ready", "got:one", "got:two", "got:three", "got:four"]);
    // The attach ends (Success) when the container exits.
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    const r = await again.done();
    expect(r.status?.status).toBe("Success");
  });

  test("stdin_once: the first attach's EOF closes the container's stdin", async () => {
    const { id } = await running(podConfig(), containerConfig("once", image.ref, ["sh", "-c", "cat; echo stdin-closed; sleep 100000"], { stdin: true, stdin_once: true }));
    const s = await spdyCommand(await attachUrl(id, { stdin: true }), { stdin: true, stdout: true, stderr: true });
    s.write("payload\n");
    await s.waitStdout("payload\n");
    s.closeStdin();
    await s.waitStdout("stdin-closed\n");
    s.close();
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
  });

  test("stdin is refused for a container created without it", async () => {
    const e = await criError(crib.client.call("RuntimeService", "Attach", { container_id: shell, stdin: true, stdout: true, stderr: false, tty: false, audit_request_id: "" }));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain("without stdin");
  });
});

describe("TTY containers", () => {
  test("the log gets the terminal's output as stdout", async () => {
    const { id } = await running(podConfig(), containerConfig("ttylog", image.ref, ["sh", "-c", "echo hello-tty; sleep 100000"], { tty: true }));
    const st = await statusOf(crib.client, id);
    const lines = await waitLog(st!.log_path, (l) => l.some(([, , t]) => t === "hello-tty"));
    expect(lines).toContainEqual(["stdout", "F", "hello-tty"]);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
  });

  test("attach with a terminal: stdin, resize and output, all in the log too", async () => {
    const { id } = await running(podConfig(), containerConfig("ttysh", image.ref, ["sh"], { tty: true, stdin: true }));
    const s = await spdyCommand(await attachUrl(id, { stdin: true, tty: true }), { stdin: true, stdout: true, tty: true });
    s.resize(120, 40);
    s.write("stty size\n");
    await s.waitStdout("40 120");
    s.write("echo tty-$((6*7))\n");
    await s.waitStdout("tty-42");
    const st = await statusOf(crib.client, id);
    await waitLog(st!.log_path, (l) => l.some(([, , t]) => t.endsWith("tty-42")));
    s.write("exit 9\n");
    const r = await s.done();
    expect(r.status?.status).toBe("Success");
    const exited = await waitStatus(crib.client, id, (x) => x.state === ContainerState.CONTAINER_EXITED && x);
    expect(exited.exit_code).toBe(9);
  });
});

describe("port-forward", () => {
  test("two requests on one connection reach a server listening on the pod's localhost", async () => {
    const pod = podConfig("web");
    const { podId } = await running(pod, containerConfig("httpd", image.ref, ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]));
    const request = "GET /index.html HTTP/1.0\r\n\r\n";
    // httpd may not listen yet right after start: retry on "connection refused".
    for (let i = 0; ; i++) {
      const probe = await spdyPortForward((await crib.client.call("RuntimeService", "PortForward", { pod_sandbox_id: podId, port: [8080] })).url);
      const r = await probe.request(8080, "0", request);
      probe.close();
      if (r.data.includes("200")) break;
      expect(r.error).toContain("error forwarding port 8080");
      if (i > 100) throw new Error(`httpd never answered: ${r.error}`);
      await Bun.sleep(100);
    }
    const { url } = await crib.client.call("RuntimeService", "PortForward", { pod_sandbox_id: podId, port: [8080] });
    expect(url).toMatch(/\/portforward\//);
    const pf = await spdyPortForward(url);
    const [a, b] = await Promise.all([pf.request(8080, "1", request), pf.request(8080, "2", request)]);
    for (const r of [a, b]) {
      expect(r.data).toStartWith("HTTP/1.");
      expect(r.data).toContain(" 200 ");
      expect(r.data.endsWith(PAGE)).toBe(true);
      expect(r.error).toBe("");
    }
    // A port nothing listens on: the error stream says so; the connection stays usable.
    const closed = await pf.request(9, "3", "x");
    expect(closed.error).toContain("error forwarding port 9");
    expect(closed.data).toBe("");
    const after = await pf.request(8080, "4", request);
    expect(after.data).toContain(PAGE);
    pf.close();
  });

  test("an unknown pod is NOT_FOUND", async () => {
    const e = await criError(crib.client.call("RuntimeService", "PortForward", { pod_sandbox_id: "nope", port: [] }));
    expect(e.code).toBe(status.NOT_FOUND);
  });
});

describe("tokens", () => {
  test("a used token is refused before the upgrade (404); so are unknown ones", async () => {
    const url = await execUrl(["true"], {});
    // A plain request does not use the token up.
    const plain = await fetch(url);
    expect(plain.status).toBe(400);
    await (await spdyCommand(url, { stdout: true, stderr: true })).done();
    const again = await upgradeRequest(url, { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io" });
    expect(again.status).toBe(404);
    const bogus = await upgradeRequest(url.replace(/[^/]+$/, "A".repeat(43)), { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io" });
    expect(bogus.status).toBe(404);
    // A token is only good for its own kind of request.
    const exec = await execUrl(["true"], {});
    const wrongKind = await upgradeRequest(exec.replace("/exec/", "/attach/"), { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io" });
    expect(wrongKind.status).toBe(404);
  });

  test("an unsupported protocol is refused with the supported list", async () => {
    const r = await upgradeRequest(await execUrl(["true"], {}), { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": "channel.k8s.io" });
    expect(r.status).toBe(403);
    expect(r.headers["x-stream-protocol-version"]).toContain("v4.channel.k8s.io");
  });

  test("an expired token is refused (404)", async () => {
    const short = await startCrib({ streaming: { tokenTTL: "200ms" } });
    try {
      const { pod_sandbox_id: podId } = await short.client.call("RuntimeService", "RunPodSandbox", { config: podConfig("ttl") });
      const { url } = await short.client.call("RuntimeService", "PortForward", { pod_sandbox_id: podId, port: [] });
      await Bun.sleep(400);
      const r = await upgradeRequest(url, { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": "portforward.k8s.io" });
      expect(r.status).toBe(404);
      expect(r.body).toContain("expired");
    } finally {
      await stopCrib(short);
    }
  });
});

describe("validation", () => {
  const base = { container_id: "", cmd: ["true"], stdin: false, stdout: true, stderr: true, tty: false, audit_request_id: "" };

  test("precise gRPC errors", async () => {
    const cases: Array<[Partial<typeof base>, status, string]> = [
      [{ container_id: shell, tty: true, stderr: true }, status.INVALID_ARGUMENT, "tty and stderr"],
      [{ container_id: shell, stdout: false, stderr: false }, status.INVALID_ARGUMENT, "one of stdin, stdout or stderr"],
      [{ container_id: shell, cmd: [] }, status.INVALID_ARGUMENT, "cmd is empty"],
      [{ container_id: "" }, status.INVALID_ARGUMENT, "container_id"],
      [{ container_id: "no-such-container" }, status.NOT_FOUND, "not found"],
    ];
    for (const [over, code, text] of cases) {
      const e = await criError(crib.client.call("RuntimeService", "Exec", { ...base, ...over }));
      expect([e.code, e.details]).toEqual([code, expect.stringContaining(text)]);
    }
    const { id } = await runContainer(crib.client, podConfig(), containerConfig("done", image.ref, ["true"]));
    await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED);
    const exited = await criError(crib.client.call("RuntimeService", "Exec", { ...base, container_id: id }));
    expect(exited.code).toBe(status.FAILED_PRECONDITION);
    const attach = await criError(crib.client.call("RuntimeService", "Attach", { container_id: id, stdin: false, stdout: true, stderr: true, tty: false, audit_request_id: "" }));
    expect(attach.code).toBe(status.FAILED_PRECONDITION);
  });
});

describe("crib ctl", () => {
  function ctl(args: string[], stdin?: string) {
    const proc = Bun.spawn([requireBinary(), "ctl", "-r", `unix://${crib.socket}`, ...args], { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    return Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]).finally(() => clearTimeout(timer));
  }

  test("exec: output and the remote exit code; -i passes stdin", async () => {
    const [out, err, code] = await ctl(["exec", shell, "sh", "-c", "echo from-ctl; echo to-stderr >&2; exit 6"]);
    expect([out, err.trim(), code]).toEqual(["from-ctl\n", "to-stderr", 6]);
    const [echoed, , ok] = await ctl(["exec", "-i", shell, "cat"], "piped through\n");
    expect([echoed, ok]).toEqual(["piped through\n", 0]);
  });

  test("port-forward LOCAL:REMOTE serves local connections through the pod", async () => {
    const { podId } = await running(podConfig("ctlweb"), containerConfig("httpd", image.ref, ["httpd", "-f", "-p", "8080", "-h", "/www"]));
    const proc = Bun.spawn([requireBinary(), "ctl", "-r", `unix://${crib.socket}`, "port-forward", podId, "0:8080"], { stdout: "pipe", stderr: "pipe" });
    try {
      const port = Number(await readUntil(proc.stdout as ReadableStream<Uint8Array>, /127\.0\.0\.1:(\d+)/));
      let body = "";
      for (let i = 0; i < 100 && body !== PAGE; i++) {
        body = await fetch(`http://127.0.0.1:${port}/index.html`).then((r) => r.text(), () => "");
        if (body !== PAGE) await Bun.sleep(100);
      }
      expect(body).toBe(PAGE);
    } finally {
      proc.kill("SIGINT");
      await proc.exited;
    }
  });

  test("attach prints the container's output until it exits", async () => {
    const { id } = await running(podConfig(), containerConfig("ticker", image.ref, ["sh", "-c", "while true; do echo tick; sleep 0.2; done"]));
    const proc = Bun.spawn([requireBinary(), "ctl", "-r", `unix://${crib.socket}`, "attach", id], { stdout: "pipe", stderr: "pipe" });
    await readUntil(proc.stdout as ReadableStream<Uint8Array>, /(tick)/);
    await crib.client.call("RuntimeService", "StopContainer", { container_id: id, timeout: 0n });
    expect(await proc.exited).toBe(0);
  });
});

describe("streaming.idleTimeout", () => {
  test("a connection with no traffic is closed; one with output keeps going", async () => {
    const c = await startCrib({ streaming: { idleTimeout: "1s" } });
    try {
      await c.client.call("ImageService", "PullImage", { image: { image: image.ref }, auth: null });
      const { podId, id } = await runContainer(c.client, podConfig("idle"), containerConfig("sleep", image.ref, ["sleep", "1000"]));
      await waitStatus(c.client, id, (s) => s.state === ContainerState.CONTAINER_RUNNING);
      // Idle: a port-forward connection on which the client opens nothing.
      const { client } = await SpdyTestClient.connect((await c.client.call("RuntimeService", "PortForward", { pod_sandbox_id: podId, port: [] })).url, ["portforward.k8s.io"]);
      for (let i = 0; i < 100 && !client.closed; i++) await Bun.sleep(100);
      expect(client.closed).toBe(true);
      // Busy: output every 0.3 s for 2.4 s, longer than the timeout in all.
      const url = (await c.client.call("RuntimeService", "Exec", { container_id: id, cmd: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.3; done"], stdin: false, stdout: true, stderr: true, tty: false, audit_request_id: "" })).url;
      const r = await (await spdyCommand(url, { stdout: true, stderr: true })).done();
      expect(r.stdout).toBe("1\n2\n3\n4\n5\n6\n7\n8\n");
      expect(r.status?.status).toBe("Success");
    } finally {
      await stopCrib(c);
    }
  });
});

/** Read a process's output until `re` matches; returns the first group. */
async function readUntil(stream: ReadableStream<Uint8Array>, re: RegExp): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  for (;;) {
    const m = re.exec(text);
    if (m) {
      reader.releaseLock();
      return m[1]!;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error(`output ended before ${re}: ${JSON.stringify(text)}`);
    text += new TextDecoder().decode(value);
  }
}
