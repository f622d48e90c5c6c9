// The compiled daemon answers every kind of gRPC client, whatever HTTP/2 :authority
// it sends over the unix socket: grpc-go's socket path (kubelet and crictl before
// Kubernetes 1.31), "localhost", "unix:<path>", an empty value, or none at all.
// Bun's HTTP/2 server resets such streams itself; src/h2/ rewrites them first.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { HpackDecoder, type HeaderField } from "../../src/h2/hpack.ts";
import { criType, decodeMessage, encodeMessage, grpcServiceDefinition } from "../helpers/protobuf_reference.ts";
import { ContainerEventType, NamespaceMode, type ContainerEventResponse, type VersionResponse } from "../../src/protocol/types.ts";
import { podConfig } from "../helpers/cri.ts";
import { type CribInstance, shutdownCrib, startCrib } from "../helpers/daemon.ts";
import { tempDir } from "../helpers/tmp.ts";

let crib: CribInstance;
beforeAll(async () => {
  crib = await startCrib();
});
afterAll(async () => {
  await shutdownCrib(crib);
});

const VERSION_PATH = "/runtime.v1.RuntimeService/Version";
const versionRequest = (): Buffer => encodeMessage(criType("runtime.v1.VersionRequest"), { version: "v1" });
const versionResponse = (b: Uint8Array): VersionResponse => decodeMessage<VersionResponse>(criType("runtime.v1.VersionResponse"), b);

// ------------------------------------------------------------ grpc-js clients

type Svc = "RuntimeService" | "ImageService" | "Crib";
type Unary = (req: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type Streaming = (req: unknown, md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/** A grpc-js client for one service with the given channel options (grpc.default_authority). */
function grpcClient(svc: Svc, options: grpc.ChannelOptions): grpc.Client {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(svc), svc);
  return new Ctor(`unix:${crib.socket}`, grpc.credentials.createInsecure(), options);
}

function call<T>(client: grpc.Client, method: string, req: object): Promise<T> {
  const fn = (client as unknown as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) => {
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

/**
 * What a grpc-js client with these options really puts in `:authority`: it dials a
 * recording socket, and the first HEADERS block is decoded.
 */
async function authoritySent(options: grpc.ChannelOptions): Promise<string | undefined> {
  const path = join(tempDir("crib-h2cap-"), "cap.sock");
  const chunks: Buffer[] = [];
  let got!: (fields: HeaderField[]) => void;
  const headers = new Promise<HeaderField[]>((r) => (got = r));
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on("error", () => {});
    s.write(rawFrame(SETTINGS, 0, 0));
    s.on("data", (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all.length < 24) return;
      const block = readFrames(all.subarray(24)).frames.find((f) => f.type === HEADERS && f.flags & END_HEADERS);
      if (block) got(new HpackDecoder().decode(block.flags & PRIORITY ? block.payload.subarray(5) : block.payload).fields);
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  const client = new grpc.Client(`unix:${path}`, grpc.credentials.createInsecure(), options);
  client.makeUnaryRequest(VERSION_PATH, (x: Buffer) => x, (x: Buffer) => x, versionRequest(), () => {});
  const fields = await headers;
  client.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return fields.find((f) => f.name === ":authority")?.value;
}

describe("grpc-js clients with grpc.default_authority set", () => {
  const cases: [string, () => string, string][] = [
    // [what, the option's value, what grpc-js then sends]
    ["the socket path, as grpc-go sends it", () => crib.socket, "path"],
    ["localhost", () => "localhost", "same"],
    ["unix:<path>", () => `unix:${crib.socket}`, "same"],
    // grpc-js does not send an empty :authority even when told to (it falls back to
    // "localhost"); the raw clients below send one.
    ["an empty string", () => "", "localhost"],
  ];
  for (const [what, authority, sends] of cases) {
    test(`${what}: Version, ListImages and crib.v1 StoreUsage answer`, async () => {
      const options = { "grpc.default_authority": authority() };
      const expected = sends === "path" ? crib.socket : sends === "same" ? authority() : sends;
      expect(await authoritySent(options)).toBe(expected);

      const runtime = grpcClient("RuntimeService", options);
      const images = grpcClient("ImageService", options);
      const own = grpcClient("Crib", options);
      try {
        const v = await call<VersionResponse>(runtime, "Version", { version: "v1" });
        expect(v.runtime_name).toBe("crib");
        expect(v.runtime_api_version).toBe("v1");
        const list = await call<{ images: unknown[] }>(images, "ListImages", { filter: null });
        expect(list.images).toEqual([]);
        const usage = await call<{ images: bigint | number | string }>(own, "StoreUsage", {});
        expect(Number(usage.images)).toBe(0);
        // Several calls on the one connection: the client's HPACK table is in use by now.
        for (let i = 0; i < 5; i++) expect((await call<VersionResponse>(runtime, "Version", { version: "v1" })).runtime_name).toBe("crib");
      } finally {
        runtime.close();
        images.close();
        own.close();
      }
    });
  }

  test("a real gRPC error comes through intact: ContainerStatus of an unknown id is NOT_FOUND with its message", async () => {
    const runtime = grpcClient("RuntimeService", { "grpc.default_authority": crib.socket });
    try {
      const err = await call(runtime, "ContainerStatus", { container_id: "0123456789abcdef-no-such", verbose: false }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(status.NOT_FOUND);
      expect(err?.details).toContain("0123456789abcdef-no-such");
    } finally {
      runtime.close();
    }
  });

  test("a server stream works: GetContainerEvents sees a pod started through the same client", async () => {
    const options = { "grpc.default_authority": crib.socket };
    const runtime = grpcClient("RuntimeService", options);
    const events: ContainerEventResponse[] = [];
    const stream = (runtime as unknown as Record<string, Streaming>)["GetContainerEvents"]!.call(runtime, {}, new grpc.Metadata(), {});
    const ended = new Promise<grpc.StatusObject | grpc.ServiceError>((resolve) => {
      stream.on("error", resolve);
      stream.on("status", resolve);
    });
    try {
      const seen = new Promise<void>((resolve) =>
        stream.on("data", (e: ContainerEventResponse) => {
          events.push(e);
          resolve();
        }),
      );
      // The subscription is live once the server has it; a pod's start is an event.
      let podId = "";
      for (let i = 0; i < 50 && events.length === 0; i++) {
        const cfg = podConfig(`authority${i}`, { linux: { security_context: { namespace_options: { network: NamespaceMode.NODE } } } });
        podId = (await call<{ pod_sandbox_id: string }>(runtime, "RunPodSandbox", { config: cfg })).pod_sandbox_id;
        await Promise.race([seen, Bun.sleep(100)]);
        await call(runtime, "StopPodSandbox", { pod_sandbox_id: podId });
        await call(runtime, "RemovePodSandbox", { pod_sandbox_id: podId });
      }
      expect(events.length).toBeGreaterThan(0);
      expect(events.some((e) => e.container_event_type === ContainerEventType.CONTAINER_CREATED_EVENT || e.container_event_type === ContainerEventType.CONTAINER_STARTED_EVENT)).toBe(true);
    } finally {
      stream.cancel();
      const end = await ended;
      expect(end.code).toBe(status.CANCELLED);
      runtime.close();
    }
  });
});

// ------------------------------------------------------------ raw HTTP/2 clients

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PRIORITY = 0x20;

function rawFrame(type: number, flags: number, stream: number, payload: Uint8Array | number[] = []): Buffer {
  const p = Buffer.from(Uint8Array.from(payload));
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, p]);
}

interface RawFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

function readFrames(buf: Buffer): { frames: RawFrame[]; rest: Buffer } {
  const frames: RawFrame[] = [];
  let pos = 0;
  while (buf.length - pos >= 9) {
    const len = buf.readUIntBE(pos, 3);
    if (buf.length - pos < 9 + len) break;
    frames.push({ type: buf[pos + 3]!, flags: buf[pos + 4]!, stream: buf.readUInt32BE(pos + 5) & 0x7fffffff, payload: buf.subarray(pos + 9, pos + 9 + len) });
    pos += 9 + len;
  }
  return { frames, rest: buf.subarray(pos) };
}

/** What the server answered on one stream. */
interface Answer {
  headers: Record<string, string>;
  trailers: Record<string, string>;
  data: Buffer;
  rst?: number;
}

/** HPACK by hand for the client side: literal fields, with or without incremental indexing. */
function literal(name: string, value: string, opts: { index?: boolean; nameIndex?: number } = {}): number[] {
  const out: number[] = [];
  const prefix = opts.index ? 6 : 4;
  const first = opts.index ? 0x40 : 0x00;
  const ni = opts.nameIndex ?? 0;
  const max = (1 << prefix) - 1;
  if (ni < max) out.push(first | ni);
  else out.push(first | max, ni - max); // every static index fits one more octet
  const str = (s: string) => {
    const b = Buffer.from(s, "latin1");
    if (b.length >= 127) throw new Error("string too long for this tiny encoder");
    out.push(b.length, ...b);
  };
  if (ni === 0) str(name);
  str(value);
  return out;
}
/** Static table: 3 = :method POST, 6 = :scheme http; 4 = :path (name), 1 = :authority (name), 31 = content-type (name). */
const POST = 0x83;
const HTTP = 0x86;

/**
 * A client speaking HTTP/2 frames itself over the daemon's socket, so it can send
 * what library clients will not: no :authority at all, an empty one, a Huffman-coded
 * one indexed into its HPACK table and then referenced by index.
 */
class RawH2Client {
  private readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder(); // the server's encoder state, mirrored
  private readonly answers = new Map<number, { a: Answer; resolve: (a: Answer) => void; sawHeaders: boolean }>();
  private nextStream = 1;
  goaway: number | undefined;

  constructor(path: string) {
    this.socket = net.connect(path);
    this.socket.on("error", () => {});
    this.socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), rawFrame(SETTINGS, 0, 0)]));
    this.socket.on("data", (c: Buffer) => this.onData(c));
    this.socket.on("close", () => {
      for (const s of this.answers.values()) s.resolve(s.a);
    });
  }

  /** Send a request: its header block (HPACK, built by the caller) and a gRPC message; the answer. */
  request(block: number[], message: Buffer): Promise<Answer> {
    const stream = this.nextStream;
    this.nextStream += 2;
    const answer = new Promise<Answer>((resolve) =>
      this.answers.set(stream, { a: { headers: {}, trailers: {}, data: Buffer.alloc(0) }, resolve, sawHeaders: false }),
    );
    const body = Buffer.alloc(5 + message.length);
    body.writeUInt32BE(message.length, 1);
    message.copy(body, 5);
    this.socket.write(Buffer.concat([rawFrame(HEADERS, END_HEADERS, stream, block), rawFrame(DATA, END_STREAM, stream, body)]));
    return answer;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const { frames, rest } = readFrames(Buffer.concat([this.buf, chunk]));
    this.buf = Buffer.from(rest);
    for (const f of frames) {
      if (f.type === SETTINGS && !(f.flags & 1)) this.socket.write(rawFrame(SETTINGS, 1, 0));
      else if (f.type === PING && !(f.flags & 1)) this.socket.write(rawFrame(PING, 1, 0, f.payload));
      else if (f.type === GOAWAY) this.goaway = f.payload.readUInt32BE(4);
      const s = this.answers.get(f.stream);
      if (!s) continue;
      if (f.type === HEADERS) {
        if (!(f.flags & END_HEADERS)) throw new Error("the test client does not take CONTINUATIONs");
        const fields = this.decoder.decode(f.flags & PRIORITY ? f.payload.subarray(5) : f.payload).fields;
        const into = s.sawHeaders ? s.a.trailers : s.a.headers;
        for (const x of fields) into[x.name] = x.value;
        s.sawHeaders = true;
      } else if (f.type === DATA) {
        s.a.data = Buffer.concat([s.a.data, f.payload]);
      } else if (f.type === RST_STREAM) {
        s.a.rst = f.payload.readUInt32BE(0);
      }
      if (f.type === RST_STREAM || (f.flags & END_STREAM && (f.type === HEADERS || f.type === DATA))) {
        this.answers.delete(f.stream);
        s.resolve(s.a);
      }
    }
  }
}

/** The gRPC status of an answer (headers-only answers carry it in the headers). */
const grpcStatus = (a: Answer): string | undefined => a.trailers["grpc-status"] ?? a.headers["grpc-status"];
/** The one gRPC message of a unary answer. */
function message(a: Answer): Buffer {
  expect(a.data.length).toBeGreaterThanOrEqual(5);
  expect(a.data[0]).toBe(0); // not compressed
  return a.data.subarray(5, 5 + a.data.readUInt32BE(1));
}

function versionHeaders(authority: number[] | undefined): number[] {
  return [
    POST,
    HTTP,
    ...literal(":path", VERSION_PATH, { nameIndex: 4 }),
    ...(authority ?? []),
    ...literal("content-type", "application/grpc", { nameIndex: 31 }),
    ...literal("te", "trailers"),
  ];
}

function expectVersion(a: Answer): void {
  expect(a.rst).toBeUndefined();
  expect(a.headers[":status"]).toBe("200");
  expect(grpcStatus(a)).toBe("0");
  expect(versionResponse(message(a)).runtime_name).toBe("crib");
}

describe("raw HTTP/2 clients", () => {
  test("no :authority at all", async () => {
    const c = new RawH2Client(crib.socket);
    try {
      expectVersion(await c.request(versionHeaders(undefined), versionRequest()));
    } finally {
      c.close();
    }
  });

  test("an empty :authority, and the socket path, as raw literals", async () => {
    const c = new RawH2Client(crib.socket);
    try {
      expectVersion(await c.request(versionHeaders(literal(":authority", "", { nameIndex: 1 })), versionRequest()));
      expectVersion(await c.request(versionHeaders(literal(":authority", crib.socket, { nameIndex: 1 })), versionRequest()));
      expect(c.goaway).toBeUndefined();
    } finally {
      c.close();
    }
  });

  test("a Huffman-coded path indexed into the client's table, then referenced by index, on one connection", async () => {
    // "/run/x.sock" Huffman-coded (as Bun's and nghttp2's encoders write it), as a
    // literal with incremental indexing on name :authority: dynamic index 62.
    const huffmanPath = [0x41, 0x89, 0x62, 0xcb, 0x6a, 0x63, 0xca, 0xe8, 0x39, 0x3a, 0xff];
    const c = new RawH2Client(crib.socket);
    try {
      expectVersion(await c.request(versionHeaders(huffmanPath), versionRequest()));
      expectVersion(await c.request(versionHeaders([0x80 | 62]), versionRequest())); // indexed: the path again
      expectVersion(await c.request(versionHeaders([0x80 | 62]), versionRequest()));
      expect(c.goaway).toBeUndefined();
    } finally {
      c.close();
    }
  });

  test("a gRPC error on a raw connection: NOT_FOUND with its message, and the connection goes on", async () => {
    const c = new RawH2Client(crib.socket);
    try {
      const req = encodeMessage(criType("runtime.v1.ContainerStatusRequest"), { container_id: "feedface-no-such", verbose: false });
      const block = [POST, HTTP, ...literal(":path", "/runtime.v1.RuntimeService/ContainerStatus", { nameIndex: 4 }), ...literal(":authority", crib.socket, { index: true, nameIndex: 1 }), ...literal("content-type", "application/grpc", { nameIndex: 31 }), ...literal("te", "trailers")];
      const a = await c.request(block, req);
      expect(a.rst).toBeUndefined();
      expect(grpcStatus(a)).toBe(String(status.NOT_FOUND));
      expect(decodeURIComponent(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? "")).toContain("feedface-no-such");
      expectVersion(await c.request(versionHeaders([0x80 | 62]), versionRequest()));
    } finally {
      c.close();
    }
  });

  test("node:http2 with a path :authority (its encoder Huffman-codes and indexes it)", async () => {
    const session = http2.connect("http://localhost", { createConnection: () => net.connect(crib.socket) });
    session.on("error", () => {});
    try {
      for (let i = 0; i < 3; i++) {
        const req = session.request({ ":method": "POST", ":path": VERSION_PATH, ":authority": crib.socket, "content-type": "application/grpc", te: "trailers" });
        const body = versionRequest();
        const framed = Buffer.alloc(5 + body.length);
        framed.writeUInt32BE(body.length, 1);
        body.copy(framed, 5);
        req.end(framed);
        const a: Answer = { headers: {}, trailers: {}, data: Buffer.alloc(0) };
        req.on("response", (h) => Object.assign(a.headers, h));
        req.on("trailers", (t) => Object.assign(a.trailers, t));
        req.on("data", (d: Buffer) => (a.data = Buffer.concat([a.data, d])));
        const err = await new Promise<Error | undefined>((resolve) => {
          req.on("end", () => resolve(undefined));
          req.on("error", resolve);
        });
        expect(err).toBeUndefined();
        expect(String(a.headers[":status"])).toBe("200");
        expect(grpcStatus(a)).toBe("0");
        expect(versionResponse(message(a)).runtime_name).toBe("crib");
      }
    } finally {
      session.destroy();
    }
  });
});

// ------------------------------------------------------------ grpc-go

describe("grpc-go (Debian's golang-google-grpc-dev), dialing the bare socket path as kubelet 1.28 does", () => {
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  const haveGo = go.status === 0 && existsSync("/usr/share/gocode/src/google.golang.org/grpc");
  if (!haveGo) {
    test.skip("go or golang-google-grpc-dev is not installed (build/install-test-deps.sh installs both)", () => {});
    return;
  }
  test("test/go/criversion prints the runtime name", async () => {
    const dir = tempDir("crib-go-");
    const bin = join(dir, "criversion");
    const build = spawnSync("go", ["build", "-o", bin, "."], {
      cwd: join(import.meta.dir, "../go/criversion"),
      encoding: "utf8",
      env: { ...process.env, GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOCACHE: join(dir, "cache"), GOFLAGS: "" },
    });
    if (build.status !== 0) throw new Error(`go build failed:\n${build.stderr}`);
    const run = Bun.spawn([bin, crib.socket], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]);
    expect({ code, out: out.trim(), err }).toEqual({ code: 0, out: "crib", err: "" });
  });
});
