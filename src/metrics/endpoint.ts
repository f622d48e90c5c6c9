// The Prometheus endpoint: GET /metrics on `metrics.address` (host:port).
// Off by default, as in containerd and CRI-O: it is a plain-HTTP, unauthenticated
// port on every node, so an operator opts in and picks where it listens
// (":9090" = every interface, "127.0.0.1:9090" = this node only).
import { errorMessage, invalidArgument, unavailable } from "../errors.ts";
import { log } from "../log/logger.ts";
import { registry } from "./crib_metrics.ts";
import { EXPOSITION_CONTENT_TYPE } from "./registry.ts";

const logger = log.with({ component: "metrics" });

export interface MetricsEndpoint {
  /** http://host:port/metrics, with the port really bound. */
  url: string;
  stop(): void;
}

export function parseMetricsAddress(address: string): { hostname: string; port: number } {
  const i = address.lastIndexOf(":");
  const port = Number(address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`metrics.address "${address}" is not host:port`);
  return { hostname: address.slice(0, i) || "0.0.0.0", port };
}

/** Start serving when `address` (config `metrics.address`) is set; undefined when metrics are off. */
export function startMetricsEndpoint(address: string): MetricsEndpoint | undefined {
  if (address === "") return undefined;
  const { hostname, port } = parseMetricsAddress(address);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname,
      port,
      fetch: async (req) => {
        const path = new URL(req.url).pathname;
        if (path !== "/metrics") return new Response("crib serves Prometheus metrics on /metrics\n", { status: 404 });
        if (req.method !== "GET" && req.method !== "HEAD") return new Response("use GET\n", { status: 405 });
        try {
          return new Response(await registry.render(), { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
        } catch (e) {
          logger.error("cannot render metrics", { error: e });
          return new Response(`cannot render metrics: ${errorMessage(e)}\n`, { status: 500 });
        }
      },
    });
  } catch (e) {
    throw unavailable(`cannot serve metrics on ${address} (metrics.address): ${errorMessage(e)}`, e);
  }
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${server.port}/metrics`;
  logger.info("serving metrics", { url });
  return { url, stop: () => void server.stop(true) };
}
