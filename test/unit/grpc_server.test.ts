// The gRPC layer (src/grpc/server.ts) on a real unix socket, with routes of its own
// and node:http2 as the client: framing, statuses, deadlines, cancellation.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import { connect } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GrpcError, GrpcServer, parseTimeout, percentEncode, type Route } from "../../src/grpc/server.ts";
import { GrpcStatus } from "../../src/protocol/grpc_status.ts";

const dir = mkdtempSync(join(tmpdir(), "crib-grpc-"));
const socket = join(dir, "g.sock");
const text = { decode: (b: Uint8Array) => Buffer.from(b).toString(), encode: (v: unknown) => Buffer.from(String(v)) };
const aborted: string[] = [];
const waitForAbort = (call: { signal: AbortSignal; path: string }) =>
  new Promise<never>((_, reject) => call.signal.addEventListener("abort", () => {
    aborted.push(`${call.path}: ${(call.signal.reason as Error).message}`);
    reject(call.signal.reason);
  }));
const routes = new Map<string, Route>([
  ["/t.S/Echo", { kind: "unary", ...text, handle: async (req) => `echo ${String(req)}` }],
  ["/t.S/Fail", { kind: "unary", ...text, handle: async () => { throw new GrpcError(GrpcStatus.NOT_FOUND, "no such thing: ünïcode 100%"); } }],
  ["/t.S/Crash", { kind: "unary", ...text, handle: async () => { throw new Error("boom"); } }],
  ["/t.S/Bad", { kind: "unary", decode: () => { throw new Error("field 3: wrong wire type"); }, encode: text.encode, handle: async () => "" }],
  ["/t.S/Hang", { kind: "unary", ...text, handle: (_req, call) => waitForAbort(call) }],
  ["/t.S/Count", { kind: "stream", ...text, handle: async (req, send) => { for (let i = 0; i < Number(req); i++) send(`n${i}`); } }],
  ["/t.S/Watch", { kind: "stream", ...text, handle: (_req, send, call) => { send("first"); return waitForAbort(call); } }],
]);
const server = new GrpcServer({
  routes,
  maxMessage: 1024 * 1024,
  toStatus: (err) => new GrpcError(GrpcStatus.INTERNAL, `internal: ${err instanceof Error ? err.message : String(err)}`),
});
let client: http2.ClientHttp2Session;

beforeAll(async () => {
  await server.listen(socket);
  client = http2.connect("http://localhost", { createConnection: () => connect(socket) });
});
afterAll(async () => {
  client.close();
  await server.shutdown(1000);
  rmSync(dir, { recursive: true, force: true });
});

const framed = (body: Buffer | string, flag = 0) => {
  const b = Buffer.from(body);
  const out = Buffer.alloc(5 + b.length);
  out[0] = flag;
  out.writeUInt32BE(b.length, 1);
  b.copy(out, 5);
  return out;
};

interface Reply { status: number; message: string; messages: string[]; httpStatus: number }

function call(path: string, body: Buffer, headers: Record<string, string> = {}, onMessage?: (m: string, cancel: () => void) => void): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    const chunks: Buffer[] = [];
    const messages: string[] = [];
    let httpStatus = 0;
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) trailers = h;
    });
    req.on("trailers", (t) => void (trailers = t));
    req.on("data", (c: Buffer) => {
      chunks.push(c);
      let buf = Buffer.concat(chunks);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const m = buf.subarray(5, 5 + buf.readUInt32BE(1)).toString();
        messages.push(m);
        buf = buf.subarray(5 + buf.readUInt32BE(1));
        onMessage?.(m, () => req.close(http2.constants.NGHTTP2_CANCEL));
      }
      chunks.length = 0;
      if (buf.length) chunks.push(buf);
    });
    req.on("close", () => resolve({ status: Number(trailers["grpc-status"] ?? -1), message: decodeURIComponent(String(trailers["grpc-message"] ?? "")), messages, httpStatus }));
    req.on("error", reject);
    req.end(body);
  });
}

describe("gRPC server", () => {
  test("a unary call answers its message and status 0", async () => {
    expect(await call("/t.S/Echo", framed("hi"))).toEqual({ status: 0, message: "", messages: ["echo hi"], httpStatus: 200 });
  });

  test("errors: the handler's status and a percent-encoded UTF-8 message; anything else through toStatus", async () => {
    expect(await call("/t.S/Fail", framed(""))).toMatchObject({ status: GrpcStatus.NOT_FOUND, message: "no such thing: ünïcode 100%", messages: [] });
    expect(await call("/t.S/Crash", framed(""))).toMatchObject({ status: GrpcStatus.INTERNAL, message: "internal: boom" });
    expect(await call("/t.S/Bad", framed("x"))).toMatchObject({ status: GrpcStatus.INVALID_ARGUMENT, message: "Bad: malformed request: field 3: wrong wire type" });
    expect(await call("/t.S/Nope", framed(""))).toMatchObject({ status: GrpcStatus.UNIMPLEMENTED, message: "unknown method /t.S/Nope" });
  });

  test("framing: no message, two messages, a cut message, compression and an oversized one are refused precisely", async () => {
    expect((await call("/t.S/Echo", Buffer.alloc(0))).status).toBe(GrpcStatus.INTERNAL);
    expect((await call("/t.S/Echo", Buffer.concat([framed("a"), framed("b")]))).message).toBe("/t.S/Echo: more than one request message");
    expect((await call("/t.S/Echo", framed("abc").subarray(0, 6))).message).toBe("/t.S/Echo: the request message is cut short");
    expect(await call("/t.S/Echo", framed("a", 1), { "grpc-encoding": "gzip" })).toMatchObject({ status: GrpcStatus.UNIMPLEMENTED });
    const over = await call("/t.S/Echo", framed(Buffer.alloc(2 * 1024 * 1024)));
    expect(over).toMatchObject({ status: GrpcStatus.RESOURCE_EXHAUSTED, message: "/t.S/Echo: received message larger than max (2097152 vs. 1048576)" });
    // The connection goes on.
    expect((await call("/t.S/Echo", framed("after"))).messages).toEqual(["echo after"]);
  });

  test("a response larger than the client's first window arrives whole", async () => {
    const big = "z".repeat(300_000);
    expect((await call("/t.S/Echo", framed(big))).messages).toEqual([`echo ${big}`]);
  });

  test("server streams: every message then status 0", async () => {
    const r = await call("/t.S/Count", framed("300"));
    expect(r.messages.length).toBe(300);
    expect(r.messages.at(-1)).toBe("n299");
    expect(r.status).toBe(0);
  });

  test("grpc-timeout: DEADLINE_EXCEEDED, and the handler's signal is aborted", async () => {
    const r = await call("/t.S/Hang", framed(""), { "grpc-timeout": "50m" });
    expect(r).toMatchObject({ status: GrpcStatus.DEADLINE_EXCEEDED, message: "/t.S/Hang: deadline exceeded" });
    expect(aborted).toContain("/t.S/Hang: /t.S/Hang: deadline exceeded");
  });

  test("a client cancelling a stream aborts the handler's signal", async () => {
    await call("/t.S/Watch", framed(""), {}, (_m, cancel) => cancel());
    for (let i = 0; i < 100 && !aborted.some((a) => a.startsWith("/t.S/Watch")); i++) await Bun.sleep(10);
    expect(aborted.find((a) => a.startsWith("/t.S/Watch"))).toContain("the client reset the stream");
  });

  test("grpc-timeout and grpc-message encodings", () => {
    expect([parseTimeout("1H"), parseTimeout("2M"), parseTimeout("3S"), parseTimeout("4m"), parseTimeout("5000u"), parseTimeout("7n")]).toEqual([3_600_000, 120_000, 3000, 4, 5, 1]);
    expect([parseTimeout("123456789S"), parseTimeout("1s"), parseTimeout("")]).toEqual([undefined, undefined, undefined]);
    expect(percentEncode("plain text")).toBe("plain text");
    expect(percentEncode("50% ü\n")).toBe("50%25 %C3%BC%0A");
  });
});
