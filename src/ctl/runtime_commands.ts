// crib ctl version / info.
import type { CtlContext } from "./context.ts";

export async function ctlVersion({ client, out }: CtlContext): Promise<number> {
  const v = await client.call("RuntimeService", "Version", { version: "v1" });
  out(`Version:  ${v.version}\nRuntimeName:  ${v.runtime_name}\nRuntimeVersion:  ${v.runtime_version}\nRuntimeApiVersion:  ${v.runtime_api_version}\n`);
  return 0;
}

export async function ctlInfo({ client, out }: CtlContext): Promise<number> {
  const s = await client.call("RuntimeService", "Status", { verbose: true });
  const info: Record<string, unknown> = { status: s.status, runtimeHandlers: s.runtime_handlers, features: s.features };
  for (const [k, v] of Object.entries(s.info)) {
    try {
      info[k] = JSON.parse(v);
    } catch {
      info[k] = v;
    }
  }
  out(JSON.stringify(info, null, 2) + "\n");
  return 0;
}
