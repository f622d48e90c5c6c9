import { unary } from "./rpc.ts";
import type { ExecRequest, ExecResponse } from "../protocol/types.ts";

/** Exec: a single-use URL on the streaming server where the command runs. */
export const containerExec = unary<ExecRequest, ExecResponse>(async (d, req) => ({ url: await d.streaming.exec(req) }));
