// Port-forward over SPDY (portforward.k8s.io): for every forwarded connection the client
// opens an error stream and a data stream with the same requestID and port headers;
// once both are there the data stream is spliced to localhost:port in the pod's
// network namespace. Failures are written as text on the error stream. Any number of
// such pairs share one connection.

import type net from "node:net";
import { errorMessage } from "../errors.ts";
import { log } from "../log/logger.ts";
import type { SpdyConnection, SpdyStream } from "./spdy_connection.ts";
import { RstStatus } from "./spdy_frames.ts";

const logger = log.with({ component: "stream" });

/** How long the second stream of a pair may take (the kubelet's streamCreationTimeout). */
const PAIR_TIMEOUT_MS = 30_000;

export interface PortForwardTarget {
  podId: string;
  /** Connects to localhost:port inside the pod. */
  dial(port: number): Promise<net.Socket>;
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ReturnType<typeof setTimeout>;
}

export function servePortForward(conn: SpdyConnection, target: PortForwardTarget): void {
  const pairs = new Map<string, Pair>();
  const sockets = new Set<net.Socket>();
  conn.onClose(() => {
    for (const p of pairs.values()) clearTimeout(p.timer);
    pairs.clear();
    for (const s of sockets) s.destroy();
  });
  conn.onStream((s) => {
    const type = s.header("streamtype");
    if (type !== "data" && type !== "error") {
      logger.debug("port-forward: refusing a stream of unknown type", { streamType: type });
      s.reset(RstStatus.PROTOCOL_ERROR);
      return;
    }
    // Old clients send no requestID: the data stream follows its error stream (ids +2).
    const requestId = s.header("requestid") ?? String(type === "error" ? s.id : s.id - 2);
    let pair = pairs.get(requestId);
    if (pair === undefined) {
      const timer = setTimeout(() => {
        const p = pairs.get(requestId);
        if (!p) return;
        pairs.delete(requestId);
        fail(p, `timed out waiting for the ${p.data ? "error" : "data"} stream of port-forward request ${requestId}`);
      }, PAIR_TIMEOUT_MS);
      pair = { timer };
      pairs.set(requestId, pair);
    }
    if (pair[type] !== undefined) {
      s.reset(RstStatus.PROTOCOL_ERROR);
      return;
    }
    pair[type] = s;
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pairs.delete(requestId);
      void forward(pair.data, pair.error, target, sockets);
    }
  });
}

function fail(p: Pair, message: string): void {
  if (p.error) {
    p.error.write(Buffer.from(message, "utf8"));
    p.error.end();
  }
  p.data?.reset(RstStatus.CANCEL);
}

async function forward(data: SpdyStream, error: SpdyStream, target: PortForwardTarget, sockets: Set<net.Socket>): Promise<void> {
  const portText = data.header("port") ?? "";
  const port = Number(portText);
  // The client only reads the error stream; its side may already be closed.
  error.read({ data: () => undefined, end: () => undefined });
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    error.write(Buffer.from(`invalid port ${JSON.stringify(portText)} in the port-forward request`, "utf8"));
    error.end();
    data.end();
    return;
  }
  let sock: net.Socket;
  try {
    sock = await target.dial(port);
  } catch (err) {
    error.write(Buffer.from(`error forwarding port ${port} to pod ${target.podId}: ${errorMessage(err)}`, "utf8"));
    error.end();
    data.end();
    return;
  }
  if (data.remoteEnded && data.wasReset) {
    sock.destroy();
    return;
  }
  sockets.add(sock);
  // client -> pod; the client's FIN half-closes the TCP connection.
  data.read({
    data: (chunk) => {
      // The pod is slower than the client: stop reading the SPDY connection for a moment.
      if (!sock.write(chunk)) pauseUntilDrain(data, sock);
    },
    end: (reset) => {
      if (reset) sock.destroy();
      else sock.end();
    },
  });
  // pod -> client
  sock.on("data", (chunk: Buffer) => {
    if (!data.write(chunk)) {
      sock.pause();
      void data.drain().then(() => sock.resume());
    }
  });
  sock.on("end", () => data.end());
  sock.on("error", (err) => logger.debug("port-forward connection error", { pod: target.podId, port, err: err.message }));
  sock.on("close", () => {
    sockets.delete(sock);
    data.end();
    error.end();
  });
}

/** Back-pressure from a slow pod socket to the SPDY connection. */
function pauseUntilDrain(stream: SpdyStream, sock: net.Socket): void {
  stream.pauseInput();
  let resumed = false;
  const resume = () => {
    if (resumed) return;
    resumed = true;
    sock.off("drain", resume);
    sock.off("close", resume);
    stream.resumeInput();
  };
  sock.on("drain", resume);
  sock.on("close", resume);
}
