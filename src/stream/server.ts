// The streaming server: the URLs that Exec, Attach and PortForward answer point here
// (http://address:port/{exec,attach,portforward}/<token>). Each token is good for one
// connection within its TTL. A request upgrades the connection to SPDY/3.1 (what
// kubectl, crictl and the kubelet speak) or, for exec and attach, to a WebSocket
// (v4/v5.channel.k8s.io); node:http's 'upgrade' event hands over the raw socket.

import http from "node:http";
import type net from "node:net";
import { errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import { runAttach, type AttachTarget } from "./attach_session.ts";
import { spdyCommandChannel, WsCommandChannel, type CommandChannel, type CommandOptions } from "./command_channel.ts";
import { runExec, type ExecTarget } from "./exec_session.ts";
import { servePortForward, type PortForwardTarget } from "./port_forward.ts";
import { PORT_FORWARD_PROTOCOL, SPDY_COMMAND_PROTOCOLS, WS_COMMAND_PROTOCOLS } from "./protocols.ts";
import { SpdyConnection } from "./spdy_connection.ts";
import { TOKEN_RE, TokenCache } from "./tokens.ts";
import { websocketAccept, WebSocketConnection } from "./websocket.ts";

const logger = log.with({ component: "stream" });

export type StreamRequest =
  | { kind: "exec"; target: ExecTarget; options: CommandOptions }
  | { kind: "attach"; target: AttachTarget; options: CommandOptions }
  | { kind: "portforward"; target: PortForwardTarget };

export type StreamKind = StreamRequest["kind"];

const ROUTE = /^\/(exec|attach|portforward)\/([^/?#]+)\/?(?:\?.*)?$/;

export interface StreamingServerOptions {
  address: string;
  /** 0 picks a free port. */
  port: number;
  tokenTtlMs: number;
  /** A connection with no traffic either way this long is closed (0: never), as the kubelet's streamIdleTimeout. */
  idleTimeoutMs: number;
}

/** The client's protocols from a comma-separated header (possibly repeated). */
function listHeader(v: string | string[] | undefined): string[] {
  const all = Array.isArray(v) ? v.join(",") : (v ?? "");
  return all.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** The first protocol of the client's list that the server speaks. */
export function negotiate(client: string[], server: string[]): string | undefined {
  return client.find((p) => server.includes(p));
}

function reject(socket: net.Socket, code: number, reason: string, message: string, headers: Record<string, string | string[]> = {}): void {
  const body = Buffer.from(message + "\n", "utf8");
  const lines = [`HTTP/1.1 ${code} ${reason}`, "Content-Type: text/plain; charset=utf-8", `Content-Length: ${body.length}`, "Connection: close"];
  for (const [k, v] of Object.entries(headers)) for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${one}`);
  socket.end(Buffer.concat([Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1"), body]));
}

export class StreamingServer {
  private readonly tokens: TokenCache<StreamRequest>;
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private base = "";

  constructor(private readonly opts: StreamingServerOptions) {
    this.tokens = new TokenCache<StreamRequest>(opts.tokenTtlMs);
    this.server = http.createServer((req, res) => this.plainRequest(req, res));
    this.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** Listen; resolves with the base URL ("http://127.0.0.1:PORT"). */
  start(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.opts.port, this.opts.address, () => {
        this.server.off("error", reject);
        const a = this.server.address() as net.AddressInfo;
        const host = a.address.includes(":") ? `[${a.address}]` : a.address;
        this.base = `http://${host}:${a.port}`;
        logger.info("streaming server listening", { url: this.base });
        resolve(this.base);
      });
    });
  }

  get baseUrl(): string {
    return this.base;
  }

  /** Store the request under a new single-use token; returns its URL. */
  url(req: StreamRequest): string {
    if (this.base === "") throw new Error("the streaming server is not listening");
    return `${this.base}/${req.kind}/${this.tokens.put(req)}`;
  }

  /** Stop listening and drop every streaming connection. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
      this.server.closeAllConnections?.();
      setTimeout(resolve, 1000);
    });
  }

  private plainRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const m = ROUTE.exec(req.url ?? "");
    const known = m !== null && TOKEN_RE.test(m[2]!) && this.tokens.peek(m[2]!)?.kind === m[1];
    res.writeHead(known ? 400 : 404, { "Content-Type": "text/plain; charset=utf-8", Connection: "close" });
    res.end(known ? `${m![1]} needs a connection upgrade: SPDY/3.1${m![1] === "portforward" ? "" : " or websocket"}\n` : "not found: unknown, used or expired streaming token\n");
  }

  private upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
    const m = ROUTE.exec(req.url ?? "");
    if (m === null) return reject(socket, 404, "Not Found", `no streaming endpoint at ${req.url ?? ""}`);
    const kind = m[1] as StreamKind;
    const token = m[2]!;
    const sr = TOKEN_RE.test(token) ? this.tokens.take(token) : undefined;
    if (sr === undefined || sr.kind !== kind) {
      logger.debug("refused a streaming request with an unknown, used or expired token", { kind });
      return reject(socket, 404, "Not Found", `the ${kind} token is unknown, already used or expired (ask for a new URL)`);
    }
    socket.setNoDelay(true);
    if (this.opts.idleTimeoutMs > 0) {
      socket.setTimeout(this.opts.idleTimeoutMs, () => {
        logger.info("closing an idle streaming connection", { kind, idleMs: this.opts.idleTimeoutMs });
        socket.destroy();
      });
    }
    const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
    try {
      if (upgrade === "spdy/3.1") this.spdy(req, socket, head, sr);
      else if (upgrade === "websocket" && sr.kind !== "portforward") this.websocket(req, socket, head, sr);
      else reject(socket, 400, "Bad Request", `unsupported upgrade ${JSON.stringify(req.headers.upgrade ?? "")} for ${kind} (use SPDY/3.1${kind === "portforward" ? "" : " or websocket"})`);
    } catch (err) {
      logger.error("streaming session failed to start", { kind, err: errorMessage(err) });
      socket.destroy();
    }
  }

  private spdy(req: http.IncomingMessage, socket: net.Socket, head: Buffer, sr: StreamRequest): void {
    const offered = listHeader(req.headers["x-stream-protocol-version"]);
    const supported = sr.kind === "portforward" ? [PORT_FORWARD_PROTOCOL] : SPDY_COMMAND_PROTOCOLS;
    if (offered.length === 0) {
      return reject(socket, 400, "Bad Request", `X-Stream-Protocol-Version is missing (this server speaks ${supported.join(", ")})`);
    }
    const protocol = negotiate(offered, supported);
    if (protocol === undefined) {
      return reject(socket, 403, "Forbidden", `none of the offered stream protocols (${offered.join(", ")}) is supported: use one of ${supported.join(", ")}`, { "X-Stream-Protocol-Version": supported });
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    const conn = new SpdyConnection(socket, "server", head);
    if (sr.kind === "portforward") {
      servePortForward(conn, sr.target);
      return;
    }
    spdyCommandChannel(conn, protocol, sr.options).then(
      (ch) => this.run(sr, ch),
      (err: unknown) => logger.warn("streaming client did not set up its streams", { kind: sr.kind, err: errorMessage(err) }),
    );
  }

  private websocket(req: http.IncomingMessage, socket: net.Socket, head: Buffer, sr: StreamRequest): void {
    const key = req.headers["sec-websocket-key"];
    if (typeof key !== "string" || key.trim() === "" || req.headers["sec-websocket-version"] !== "13") {
      return reject(socket, 400, "Bad Request", "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13", { "Sec-WebSocket-Version": "13" });
    }
    const offered = listHeader(req.headers["sec-websocket-protocol"]);
    const protocol = negotiate(offered, WS_COMMAND_PROTOCOLS);
    if (protocol === undefined) {
      return reject(socket, 400, "Bad Request", `none of the offered WebSocket subprotocols (${offered.join(", ") || "none"}) is supported: use one of ${WS_COMMAND_PROTOCOLS.join(", ")}`);
    }
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${websocketAccept(key.trim())}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
    );
    const ws = new WebSocketConnection(socket, "server", head);
    if (sr.kind === "portforward") return;
    this.run(sr, new WsCommandChannel(ws, protocol, sr.options));
  }

  private run(sr: StreamRequest, ch: CommandChannel): void {
    const started = performance.now();
    const work = sr.kind === "exec" ? runExec(sr.target, ch) : sr.kind === "attach" ? runAttach(sr.target, ch) : Promise.resolve();
    work.then(
      () => logger.debug("streaming session ended", { kind: sr.kind, protocol: ch.protocol, ms: Math.round(performance.now() - started) }),
      (err: unknown) => {
        logger.error("streaming session failed", { kind: sr.kind, err: errorMessage(err) });
        ch.finish({ error: errorMessage(err) });
      },
    );
  }
}
