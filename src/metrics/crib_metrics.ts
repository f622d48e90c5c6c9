// crib's own metric families, in the process-wide registry that /metrics serves.
// Components import the one they feed (the image component counts pulled bytes);
// gauges of the daemon's state are collected at scrape time (daemon/gauges.ts).
import { Counter, Histogram, Registry } from "./registry.ts";

export const registry = new Registry();

/** Seconds: CRI calls range from sub-millisecond status calls to minutes-long pulls. */
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

// The names and labels of go-grpc-prometheus, which containerd exports too.
export const rpcHandled = registry.register(
  new Counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", ["grpc_type", "grpc_service", "grpc_method", "grpc_code"]),
);
export const rpcSeconds = registry.register(
  new Histogram("grpc_server_handling_seconds", "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.", ["grpc_type", "grpc_service", "grpc_method"], RPC_BUCKETS),
);

export const pulledBytes = registry.register(new Counter("crib_image_pulled_bytes_total", "Bytes of image blobs downloaded from registries."));

/** For the image component's pull path: count what a blob fetch really downloaded. */
export function countPulledBlob<T extends { fetched: number }>(r: T): T {
  if (r.fetched > 0) pulledBytes.inc({}, r.fetched);
  return r;
}
