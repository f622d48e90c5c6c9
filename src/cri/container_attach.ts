import { unary } from "./rpc.ts";
import type { AttachRequest, AttachResponse } from "../protocol/types.ts";

/** Attach: a single-use URL on the streaming server for the running container's stdio. */
export const containerAttach = unary<AttachRequest, AttachResponse>(async (d, req) => ({ url: await d.streaming.attach(req) }));
