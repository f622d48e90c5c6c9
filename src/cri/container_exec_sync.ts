import { unary } from "./rpc.ts";
import type { ExecSyncRequest, ExecSyncResponse } from "../protocol/types.ts";

export const containerExecSync = unary<ExecSyncRequest, ExecSyncResponse>(async (d, req) => {
  const r = await d.containers.execSync(req.container_id, req.cmd, Number(req.timeout));
  // Buffer views of the monitor's bytes, not copies (up to 16 MiB each).
  const view = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { stdout: view(r.stdout), stderr: view(r.stderr), exit_code: r.exitCode };
});
