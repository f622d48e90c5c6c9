import { unary } from "./rpc.ts";
import type { ExecSyncRequest, ExecSyncResponse } from "./types.ts";

export const containerExecSync = unary<ExecSyncRequest, ExecSyncResponse>(async (d, req) => {
  const r = await d.containers.execSync(req.container_id, req.cmd, Number(req.timeout));
  return { stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr), exit_code: r.exitCode };
});
