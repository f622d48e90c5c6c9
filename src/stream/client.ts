// The client side of the streaming URLs, as crictl speaks them (SPDY/3.1): dial with
// an HTTP upgrade, then a remote command (exec/attach) or port-forward streams.
// Used by `crib ctl exec|attach|port-forward`.

import net from "node:net";
import { channelVersion } from "./command_channel.ts";
import { PORT_FORWARD_PROTOCOL, SPDY_COMMAND_PROTOCOLS } from "./protocols.ts";
import { SpdyConnection, type SpdyStream } from "./spdy_connection.ts";
import { exitCodeOf, type Status, type TerminalSize } from "./status.ts";

export class StreamDialError extends Error {}

/** Upgrade a connection to `url` to SPDY/3.1 with one of `protocols`. */
export async function dialSpdy(url: string, protocols: string[]): Promise<{ conn: SpdyConnection; protocol: string }> {
  const u = new URL(url);
  if (u.protocol !== "http:") throw new StreamDialError(`unsupported streaming URL ${url} (only http:// is spoken)`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const sock = net.connect(Number(u.port || 80), host);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", (e) => reject(new StreamDialError(`connect to ${u.host}: ${e.message}`)));
  });
  sock.setNoDelay(true);
  sock.write(
    `POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
      `X-Stream-Protocol-Version: ${protocols.join(", ")}\r\nContent-Length: 0\r\nUser-Agent: crib-ctl\r\n\r\n`,
  );
  const { status, headers, rest, body } = await readResponseHead(sock);
  if (status !== 101) {
    sock.destroy();
    throw new StreamDialError(`the streaming server refused the upgrade: HTTP ${status}${body ? `: ${body.trim()}` : ""}`);
  }
  const protocol = headers.get("x-stream-protocol-version") ?? "";
  if (!protocols.includes(protocol)) {
    sock.destroy();
    throw new StreamDialError(`the streaming server chose protocol ${JSON.stringify(protocol)}, not one of ${protocols.join(", ")}`);
  }
  return { conn: new SpdyConnection(sock, "client", rest), protocol };
}

function readResponseHead(sock: net.Socket): Promise<{ status: number; headers: Map<string, string>; rest: Buffer; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > 64 * 1024) reject(new StreamDialError("the streaming server's response head is too long"));
        return;
      }
      sock.off("data", onData);
      sock.off("close", onClose);
      sock.pause();
      const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(lines[0]?.split(" ")[1]);
      const headers = new Map<string, string>();
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
      }
      const rest = buf.subarray(end + 4);
      if (status === 101) {
        queueMicrotask(() => sock.resume());
        resolve({ status, headers, rest, body: "" });
        return;
      }
      const len = Number(headers.get("content-length") ?? "0");
      resolve({ status, headers, rest, body: rest.subarray(0, len).toString("utf8") });
    };
    const onClose = () => reject(new StreamDialError("the streaming server closed the connection without answering"));
    sock.on("data", onData);
    sock.once("close", onClose);
  });
}

export interface RemoteCommandIO {
  stdin?: { onData(fn: (chunk: Uint8Array) => void): void; onEnd(fn: () => void): void; pause(): void; resume(): void };
  stdout(chunk: Uint8Array): void;
  /** Absent: no stderr stream (a TTY has none). */
  stderr?: (chunk: Uint8Array) => void;
  tty: boolean;
  /** Register for terminal size changes; the first size is sent at once. */
  sizes?: (send: (size: TerminalSize) => void) => void;
}

/** The outcome of a remote command as the error stream reported it. */
export interface RemoteCommandResult {
  exitCode: number;
  /** The failure message, when it was not just a non-zero exit. */
  message?: string;
}

/** Run an exec or attach over a dialled SPDY connection (streams opened in kubectl's order). */
export async function runRemoteCommand(conn: SpdyConnection, protocol: string, io: RemoteCommandIO): Promise<RemoteCommandResult> {
  const version = channelVersion(protocol);
  const error = await conn.openStream({ streamtype: "error" });
  const stdin = io.stdin ? await conn.openStream({ streamtype: "stdin" }) : undefined;
  const stdout = await conn.openStream({ streamtype: "stdout" });
  const stderr = io.stderr ? await conn.openStream({ streamtype: "stderr" }) : undefined;
  const resize = io.tty && version >= 3 ? await conn.openStream({ streamtype: "resize" }) : undefined;

  const ended = (s: SpdyStream | undefined, onData?: (c: Uint8Array) => void): Promise<void> =>
    s === undefined ? Promise.resolve() : new Promise((resolve) => s.read({ data: (c) => onData?.(c), end: () => resolve() }));
  let errorText = "";
  const done = Promise.all([
    ended(stdout, io.stdout),
    ended(stderr, io.stderr),
    ended(error, (c) => (errorText += Buffer.from(c).toString("utf8"))),
  ]);
  if (resize && io.sizes) io.sizes((size) => resize.write(Buffer.from(JSON.stringify({ Width: size.width, Height: size.height }), "utf8")));
  if (stdin && io.stdin) {
    const input = io.stdin;
    input.onData((chunk) => {
      if (!stdin.write(chunk)) {
        input.pause();
        void stdin.drain().then(() => input.resume());
      }
    });
    input.onEnd(() => stdin.end());
  }
  await done;
  conn.close();
  return resultOf(version, errorText);
}

function resultOf(version: number, text: string): RemoteCommandResult {
  if (version < 4) return text === "" ? { exitCode: 0 } : { exitCode: 1, message: text };
  if (text.trim() === "") return { exitCode: 0 };
  let st: Status;
  try {
    st = JSON.parse(text) as Status;
  } catch {
    return { exitCode: 1, message: text };
  }
  const exitCode = exitCodeOf(st);
  return st.status === "Success" || st.reason === "NonZeroExitCode" ? { exitCode } : { exitCode, message: st.message ?? text };
}

/** Dial a remote command URL (exec or attach) and run it. */
export async function remoteCommand(url: string, io: RemoteCommandIO): Promise<RemoteCommandResult> {
  const { conn, protocol } = await dialSpdy(url, SPDY_COMMAND_PROTOCOLS);
  return runRemoteCommand(conn, protocol, io);
}

/** A port-forward session: forward(sock, port) splices one local connection to the pod's port. */
export class PortForwardClient {
  private nextRequest = 0;

  private constructor(readonly conn: SpdyConnection) {}

  static async dial(url: string): Promise<PortForwardClient> {
    const { conn } = await dialSpdy(url, [PORT_FORWARD_PROTOCOL]);
    return new PortForwardClient(conn);
  }

  /** Forward one connection; `onError` gets the server's message if the pod side failed. */
  async forward(sock: net.Socket, port: number, onError: (message: string) => void): Promise<void> {
    const requestid = String(this.nextRequest++);
    sock.pause();
    const error = await this.conn.openStream({ streamtype: "error", port: String(port), requestid });
    error.end(); // we only read it
    const data = await this.conn.openStream({ streamtype: "data", port: String(port), requestid });
    let errorText = "";
    error.read({
      data: (c) => (errorText += Buffer.from(c).toString("utf8")),
      end: () => {
        if (errorText !== "") {
          onError(errorText);
          sock.destroy();
        }
      },
    });
    data.read({
      data: (c) => {
        if (!sock.write(c)) {
          data.pauseInput();
          sock.once("drain", () => data.resumeInput());
        }
      },
      end: (reset) => (reset ? sock.destroy() : sock.end()),
    });
    sock.on("data", (c: Buffer) => {
      if (!data.write(c)) {
        sock.pause();
        void data.drain().then(() => sock.resume());
      }
    });
    sock.on("end", () => data.end());
    sock.on("error", () => undefined);
    sock.on("close", () => {
      if (!data.localEnded) data.reset();
    });
    sock.resume();
  }

  close(): void {
    this.conn.close();
  }
}
