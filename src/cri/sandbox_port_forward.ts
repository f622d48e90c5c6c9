import { unary } from "./rpc.ts";
import type { PortForwardRequest, PortForwardResponse } from "../protocol/types.ts";

/** PortForward: a single-use URL on the streaming server that forwards to ports in the pod. */
export const sandboxPortForward = unary<PortForwardRequest, PortForwardResponse>(async (d, req) => ({ url: await d.streaming.portForward(req) }));
