// Just enough of a Kubernetes API server and kubelet for a real `kubectl exec`, `attach`
// and `port-forward` to reach crib's streaming server: it answers the pod GET kubectl
// makes first, and for the exec/attach/portforward subresources asks crib for a
// streaming URL over CRI (as the kubelet does) and then proxies the upgrade request
// to that URL byte for byte, rewriting only the request target and Host.
// FAKE_API_TAP=1 prints the first bytes of every chunk both ways (protocol debugging).
import { connect, createServer, type Server, type Socket } from "node:net";
import type { CriClient } from "../../src/ctl/client.ts";

export interface FakePod {
  namespace: string;
  name: string;
  podSandboxId: string;
  /** Container name -> CRI container id. */
  containers: Record<string, string>;
}

export interface FakeApiServer {
  url: string;
  /** Requests seen, "METHOD path" (for a failing test to show). */
  seen: string[];
  stop(): Promise<void>;
}

const HEAD_END = "\r\n\r\n";

function bool(q: URLSearchParams, k: string): boolean {
  return q.get(k) === "true" || q.get(k) === "1";
}

async function streamingUrl(cri: CriClient, pod: FakePod, sub: string, q: URLSearchParams): Promise<string> {
  const container = q.get("container") ?? Object.keys(pod.containers)[0] ?? "";
  const id = pod.containers[container] ?? "";
  switch (sub) {
    case "exec":
      return (
        await cri.call("RuntimeService", "Exec", {
          container_id: id,
          cmd: q.getAll("command"),
          tty: bool(q, "tty"),
          stdin: bool(q, "stdin"),
          stdout: bool(q, "stdout"),
          stderr: bool(q, "stderr"),
          audit_request_id: "",
        })
      ).url;
    case "attach":
      return (await cri.call("RuntimeService", "Attach", { container_id: id, tty: bool(q, "tty"), stdin: bool(q, "stdin"), stdout: bool(q, "stdout"), stderr: bool(q, "stderr"), audit_request_id: "" })).url;
    case "portforward":
      return (await cri.call("RuntimeService", "PortForward", { pod_sandbox_id: pod.podSandboxId, port: [] })).url;
    default:
      throw new Error(`no such subresource ${sub}`);
  }
}

function podJson(pod: FakePod): string {
  return JSON.stringify({
    kind: "Pod",
    apiVersion: "v1",
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.podSandboxId },
    spec: { containers: Object.keys(pod.containers).map((name) => ({ name, image: "busybox" })) },
    status: { phase: "Running", containerStatuses: Object.keys(pod.containers).map((name) => ({ name, ready: true, started: true, state: { running: {} } })) },
  });
}

/** Legacy discovery, which kubectl reads before it resolves "pod/web". */
const DISCOVERY: Record<string, unknown> = {
  "/api": { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1" }] },
  "/apis": { kind: "APIGroupList", apiVersion: "v1", groups: [] },
  "/api/v1": {
    kind: "APIResourceList",
    groupVersion: "v1",
    resources: [
      { name: "pods", singularName: "pod", namespaced: true, kind: "Pod", verbs: ["get", "list"], shortNames: ["po"] },
      { name: "pods/attach", singularName: "", namespaced: true, kind: "PodAttachOptions", verbs: ["create", "get"] },
      { name: "pods/exec", singularName: "", namespaced: true, kind: "PodExecOptions", verbs: ["create", "get"] },
      { name: "pods/portforward", singularName: "", namespaced: true, kind: "PodPortForwardOptions", verbs: ["create", "get"] },
    ],
  },
};

function reply(sock: Socket, code: number, body: string): void {
  sock.end(`HTTP/1.1 ${code} ${code === 200 ? "OK" : "Not Found"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export async function startFakeApiServer(cri: CriClient, pod: FakePod): Promise<FakeApiServer> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(HEAD_END);
      if (end < 0) return;
      client.off("data", onData);
      client.pause();
      const text = head.subarray(0, end).toString("latin1");
      const rest = head.subarray(end + HEAD_END.length);
      const [requestLine = "", ...headerLines] = text.split("\r\n");
      const [method = "", target = ""] = requestLine.split(" ");
      const url = new URL(target, "http://fake");
      seen.push(`${method} ${url.pathname}`);
      const discovery = DISCOVERY[url.pathname];
      if (discovery !== undefined) return reply(client, 200, JSON.stringify(discovery));
      const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(?:\/(exec|attach|portforward))?$/.exec(url.pathname);
      if (!m || m[1] !== pod.namespace || m[2] !== pod.name) return reply(client, 404, JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 }));
      if (m[3] === undefined) return reply(client, 200, podJson(pod));
      streamingUrl(cri, pod, m[3], url.searchParams).then(
        (target) => {
          const to = new URL(target);
          const upstream = connect({ host: to.hostname, port: Number(to.port) }, () => {
            const headers = headerLines.filter((l) => !/^host:/i.test(l));
            upstream.write(`${method} ${to.pathname}${to.search} HTTP/1.1\r\nHost: ${to.host}\r\n${headers.join("\r\n")}${HEAD_END}`);
            if (rest.length > 0) upstream.write(rest);
            if (process.env.FAKE_API_TAP) {
              client.on("data", (d: Buffer) => process.stderr.write(`C->S ${d.length} ${d.subarray(0, 48).toString("hex")}\n`));
              upstream.on("data", (d: Buffer) => process.stderr.write(`S->C ${d.length} ${d.subarray(0, 48).toString("hex")}\n`));
            }
            client.pipe(upstream);
            upstream.pipe(client);
            client.resume();
          });
          sockets.add(upstream);
          upstream.on("close", () => {
            sockets.delete(upstream);
            client.destroy();
          });
          upstream.on("error", () => client.destroy());
          client.on("close", () => upstream.destroy());
        },
        (err: unknown) => reply(client, 404, JSON.stringify({ kind: "Status", status: "Failure", message: String(err), code: 404 })),
      );
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("fake apiserver: no TCP address");
  return {
    url: `http://127.0.0.1:${addr.port}`,
    seen,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
