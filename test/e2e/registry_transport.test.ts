// The registry client's HTTP layer (Bun's fetch underneath) against servers that
// misbehave at the socket level: no answer at all, a body that goes silent, a
// gzip Content-Encoding that must not be undone (a layer keeps its digest).
import { afterAll, describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { HttpTransport, NetworkError, readBody } from "../../src/image/registry/transport.ts";

const servers: Array<{ stop(force?: boolean): unknown }> = [];
afterAll(() => {
  for (const s of servers) s.stop(true);
});

/** A TCP server that reads requests and answers with `reply` (raw bytes), or never. */
function rawServer(reply: string | undefined): number {
  const s = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(sock) {
        if (reply !== undefined) sock.write(reply);
      },
    },
  });
  servers.push(s);
  return s.port;
}

const request = (port: number) => ({ method: "GET" as const, url: new URL(`http://127.0.0.1:${port}/v2/`), headers: {}, what: "test" });

describe("registry transport", () => {
  test("a server that never answers: a retryable NetworkError after the headers timeout", async () => {
    const port = rawServer(undefined);
    const t = new HttpTransport({ headersTimeoutMs: 150, retryDelaysMs: [] });
    const err = await t.send(request(port)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).message).toContain("no answer within 0.15s");
    expect((err as NetworkError).retryable).toBe(true);
  });

  test("a body that goes silent: the read fails after the body timeout", async () => {
    const port = rawServer("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly-this");
    const t = new HttpTransport({ bodyTimeoutMs: 150, retryDelaysMs: [] });
    const res = await t.send(request(port));
    expect(res.status).toBe(200);
    const err = await readBody(res, 1000, "body").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).message).toContain("no data for 0.15s");
  });

  test("a gzip Content-Encoding reaches the caller as sent", async () => {
    const packed = gzipSync(Buffer.from("layer bytes"));
    const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(packed, { headers: { "content-encoding": "gzip" } }) });
    servers.push(s);
    const res = await new HttpTransport().send(request(s.port ?? 0));
    expect(Buffer.from(await readBody(res, 1000, "body")).equals(packed)).toBe(true);
  });

  test("HTTP_PROXY is used, except for loopback registries (as Go's ProxyFromEnvironment)", async () => {
    const seen: string[] = [];
    const proxy = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => (seen.push(req.url), new Response("via proxy")) });
    const direct = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("direct") });
    servers.push(proxy, direct);
    const saved = { http_proxy: process.env.http_proxy, HTTP_PROXY: process.env.HTTP_PROXY };
    process.env.http_proxy = process.env.HTTP_PROXY = `http://127.0.0.1:${proxy.port}`;
    try {
      const t = new HttpTransport({ retryDelaysMs: [] });
      const text = async (url: string) => new TextDecoder().decode(await readBody(await t.send({ ...request(0), url: new URL(url) }), 1000, "body"));
      expect(await text(`http://127.0.0.1:${direct.port}/v2/`)).toBe("direct");
      expect(await text(`http://localhost:${direct.port}/v2/`)).toBe("direct");
      expect(await text("http://registry.example/v2/")).toBe("via proxy");
      expect(seen).toEqual(["http://registry.example/v2/"]);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test("a caller's abort wins over everything, and is what the caller gets", async () => {
    const port = rawServer(undefined);
    const ctl = new AbortController();
    const reason = new Error("caller gave up");
    setTimeout(() => ctl.abort(reason), 50);
    const err = await new HttpTransport({ retryDelaysMs: [] }).send({ ...request(port), signal: ctl.signal }).catch((e: unknown) => e);
    expect(err).toBe(reason);
  });
});
