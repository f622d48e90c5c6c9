// crib ctl version / info.
import { flag } from "../cli/args.ts";
import { OBJECT_OUTPUT, type CtlCommand } from "./command.ts";
import { protoJson, structured, verboseInfo } from "./format.ts";

export const version: CtlCommand = {
  name: "version",
  summary: "runtime name and versions",
  args: "",
  flags: [],
  examples: ["crib ctl version"],
  async run({ client, out }) {
    const v = await client.call("RuntimeService", "Version", { version: "v1" });
    out(`Version:  ${v.version}\nRuntimeName:  ${v.runtime_name}\nRuntimeVersion:  ${v.runtime_version}\nRuntimeApiVersion:  ${v.runtime_api_version}\n`);
    return 0;
  },
};

export const info: CtlCommand = {
  name: "info",
  summary: "runtime status, conditions, handlers and the effective config",
  args: "[flags]",
  flags: [OBJECT_OUTPUT],
  examples: ["crib ctl info", "crib ctl info -o yaml"],
  async run({ client, args, out }) {
    const s = await client.call("RuntimeService", "Status", { verbose: true });
    const { info, ...status } = protoJson("runtime.v1.StatusResponse", s) as { info: Record<string, string> };
    out(structured(flag(args, "output") ?? "json", { ...status, ...verboseInfo(info) }));
    return 0;
  },
};
