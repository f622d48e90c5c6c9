// crib ctl for pods and containers, in crictl's shape:
// pods, runp, stopp, rmp, inspectp, ps, create, start, stop, rm, inspect, logs.
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { boolFlag, flag, pairs, UsageError } from "../cli/args.ts";
import type { ContainerConfig, Out, PodSandboxConfig } from "../protocol/types.ts";
import { ContainerState, PodSandboxState } from "../protocol/types.ts";
import { LABEL, NO_TRUNC, OBJECT_OUTPUT, QUIET, TABLE_OUTPUT, type CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";
import { idCell, protoJson, structured, table, verboseInfo } from "./format.ts";
const podStates = ["SANDBOX_READY", "SANDBOX_NOTREADY"];
const containerStates = ["CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED", "CONTAINER_UNKNOWN"];

function ago(ns: bigint): string {
  const s = Math.max(0, Math.round((Date.now() - Number(ns / 1_000_000n)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  return `${Math.round(s / 3600)} hours ago`;
}

/** A CRI config from a JSON or YAML file (snake_case field names, as crictl's files). */
async function readConfig<T>(path: string, what: string): Promise<Out<T>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UsageError(`${path}: the ${what} is not valid ${path.endsWith(".json") ? "JSON" : "YAML"}: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new UsageError(`${path}: a ${what} must be a JSON or YAML object`);
  return v as Out<T>;
}

/** The ids a command acts on: at least one. */
function ids(args: CtlContext["args"], what: string): string[] {
  if (args.positionals.length === 0) throw new UsageError(`which ${what}? give ${what.toUpperCase()}-ID...`);
  return args.positionals;
}

const noArgs = (args: CtlContext["args"], command: string) => {
  if (args.positionals.length > 0) throw new UsageError(`${command} takes no arguments (got ${args.positionals.join(" ")}); filters are flags`);
};

export const pods: CtlCommand = {
  name: "pods",
  summary: "list pod sandboxes",
  args: "[flags]",
  flags: [QUIET, { name: "state", value: "STATE", values: ["ready", "notready"], help: "only pods in this state" }, LABEL, TABLE_OUTPUT, NO_TRUNC],
  examples: ["crib ctl pods", "crib ctl pods --state ready -o json"],
  run: runPods,
};

async function runPods({ client, args, out }: CtlContext): Promise<number> {
  noArgs(args, "pods");
  const state = flag(args, "state");
  const res = await client.call("RuntimeService", "ListPodSandbox", {
    filter: {
      state: state ? { state: state === "ready" ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY } : null,
      label_selector: pairs(args, "label"),
    },
  });
  const format = flag(args, "output") ?? "table";
  if (format !== "table") {
    out(structured(format, protoJson("runtime.v1.ListPodSandboxResponse", res)));
    return 0;
  }
  if (boolFlag(args, "quiet")) {
    out(res.items.map((p) => p.id + "\n").join(""));
    return 0;
  }
  const noTrunc = boolFlag(args, "no-trunc");
  out(table(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"], res.items.map((p) => [
    idCell(p.id, noTrunc), ago(p.created_at), (podStates[p.state] ?? "?").replace("SANDBOX_", ""), p.metadata?.name ?? "", p.metadata?.namespace ?? "", String(p.metadata?.attempt ?? 0), p.runtime_handler,
  ])));
  return 0;
}

export const runp: CtlCommand = {
  name: "runp",
  summary: "run a pod sandbox from a JSON or YAML pod config (crictl's files)",
  args: "[flags] POD-CONFIG.json|yaml",
  flags: [{ name: "runtime", short: "r", value: "HANDLER", help: "runtime handler (RuntimeClass), default the configured one" }],
  operands: ["file"],
  examples: ["crib ctl runp pod.json", "crib ctl runp --runtime runc pod.yaml"],
  run: runRunp,
};

async function runRunp({ client, args, out }: CtlContext): Promise<number> {
  const file = args.positionals[0];
  if (!file || args.positionals.length > 1) throw new UsageError("give one POD-CONFIG file");
  const config = await readConfig<PodSandboxConfig>(file, "pod config");
  const res = await client.call("RuntimeService", "RunPodSandbox", { config, runtime_handler: flag(args, "runtime") ?? "" }, { timeoutMs: 240_000 });
  out(res.pod_sandbox_id + "\n");
  return 0;
}

export const stopp: CtlCommand = {
  name: "stopp",
  summary: "stop pod sandboxes (their containers too)",
  args: "POD-ID...",
  flags: [],
  operands: ["pod"],
  examples: ["crib ctl stopp 1a2b3c", "crib ctl pods -q | xargs crib ctl stopp"],
  run: runStopp,
};

async function runStopp({ client, args, out }: CtlContext): Promise<number> {
  for (const id of ids(args, "pod")) {
    await client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: id }, { timeoutMs: 240_000 });
    out(`Stopped sandbox ${id}\n`);
  }
  return 0;
}

export const rmp: CtlCommand = {
  name: "rmp",
  summary: "remove pod sandboxes (stopping them first)",
  args: "POD-ID...",
  flags: [],
  operands: ["pod"],
  examples: ["crib ctl rmp 1a2b3c"],
  run: runRmp,
};

async function runRmp({ client, args, out }: CtlContext): Promise<number> {
  for (const id of ids(args, "pod")) {
    await client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id }, { timeoutMs: 240_000 });
    out(`Removed sandbox ${id}\n`);
  }
  return 0;
}

export const inspectp: CtlCommand = {
  name: "inspectp",
  summary: "pod sandbox status and crib's view of it",
  args: "[flags] POD-ID...",
  flags: [OBJECT_OUTPUT],
  operands: ["pod"],
  examples: ["crib ctl inspectp 1a2b3c", "crib ctl inspectp -o yaml 1a2b3c"],
  run: runInspectp,
};

async function runInspectp({ client, args, out }: CtlContext): Promise<number> {
  for (const id of ids(args, "pod")) {
    const res = await client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
    out(structured(flag(args, "output") ?? "json", { status: res.status && protoJson("runtime.v1.PodSandboxStatus", res.status), ...verboseInfo(res.info) }));
  }
  return 0;
}

const STATE_FILTER: Record<string, ContainerState> = {
  created: ContainerState.CONTAINER_CREATED,
  running: ContainerState.CONTAINER_RUNNING,
  exited: ContainerState.CONTAINER_EXITED,
  unknown: ContainerState.CONTAINER_UNKNOWN,
};

export const ps: CtlCommand = {
  name: "ps",
  summary: "list containers (running ones; -a for all)",
  args: "[flags]",
  flags: [
    { name: "all", short: "a", boolean: true, help: "all containers, exited ones too" },
    QUIET,
    { name: "pod", short: "p", value: "POD-ID", complete: "pod", help: "only containers of this pod" },
    { name: "state", value: "STATE", values: Object.keys(STATE_FILTER), help: "only containers in this state" },
    LABEL,
    TABLE_OUTPUT,
    NO_TRUNC,
  ],
  examples: ["crib ctl ps -a", "crib ctl ps -q --pod 1a2b3c | xargs crib ctl stop"],
  run: runPs,
};

async function runPs({ client, args, out }: CtlContext): Promise<number> {
  noArgs(args, "ps");
  const state = flag(args, "state");
  const res = await client.call("RuntimeService", "ListContainers", {
    filter: {
      pod_sandbox_id: flag(args, "pod") ?? "",
      state: state ? { state: STATE_FILTER[state]! } : boolFlag(args, "all") ? null : { state: ContainerState.CONTAINER_RUNNING },
      label_selector: pairs(args, "label"),
    },
  });
  const format = flag(args, "output") ?? "table";
  if (format !== "table") {
    out(structured(format, protoJson("runtime.v1.ListContainersResponse", res)));
    return 0;
  }
  if (boolFlag(args, "quiet")) {
    out(res.containers.map((c) => c.id + "\n").join(""));
    return 0;
  }
  const noTrunc = boolFlag(args, "no-trunc");
  out(table(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"], res.containers.map((c) => [
    idCell(c.id, noTrunc), c.image?.image ?? "", ago(c.created_at), (containerStates[c.state] ?? "?").replace("CONTAINER_", ""), c.metadata?.name ?? "", String(c.metadata?.attempt ?? 0), idCell(c.pod_sandbox_id, noTrunc),
  ])));
  return 0;
}

export const create: CtlCommand = {
  name: "create",
  summary: "create a container in a pod from JSON or YAML configs (crictl's files)",
  args: "POD-ID CONTAINER-CONFIG POD-CONFIG",
  flags: [],
  operands: ["pod", "file", "file"],
  examples: ["crib ctl create 1a2b3c container.json pod.json"],
  run: runCreate,
};

async function runCreate({ client, args, out }: CtlContext): Promise<number> {
  const [pod, containerFile, podFile] = args.positionals;
  if (!pod || !containerFile || !podFile || args.positionals.length > 3) throw new UsageError("give POD-ID CONTAINER-CONFIG POD-CONFIG");
  const config = await readConfig<ContainerConfig>(containerFile, "container config");
  const sandbox = await readConfig<PodSandboxConfig>(podFile, "pod config");
  const res = await client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: pod, config, sandbox_config: sandbox }, { timeoutMs: 240_000 });
  out(res.container_id + "\n");
  return 0;
}

export const start: CtlCommand = {
  name: "start",
  summary: "start created containers",
  args: "CONTAINER-ID...",
  flags: [],
  operands: ["container"],
  examples: ["crib ctl start 4d5e6f"],
  run: runStart,
};

async function runStart({ client, args, out }: CtlContext): Promise<number> {
  for (const id of ids(args, "container")) {
    await client.call("RuntimeService", "StartContainer", { container_id: id });
    out(id + "\n");
  }
  return 0;
}

export const stop: CtlCommand = {
  name: "stop",
  summary: "stop running containers (SIGTERM, then SIGKILL after the timeout)",
  args: "[flags] CONTAINER-ID...",
  flags: [{ name: "timeout", short: "t", value: "SECONDS", default: "10", help: "seconds between the stop signal and SIGKILL" }],
  operands: ["container"],
  examples: ["crib ctl stop 4d5e6f", "crib ctl stop -t 0 4d5e6f"],
  run: runStop,
};

async function runStop({ client, args, out }: CtlContext): Promise<number> {
  const t = flag(args, "timeout") ?? "10";
  if (!/^\d+$/.test(t)) throw new UsageError(`--timeout must be a whole number of seconds (got ${JSON.stringify(t)})`);
  const timeout = BigInt(t);
  for (const id of ids(args, "container")) {
    await client.call("RuntimeService", "StopContainer", { container_id: id, timeout }, { timeoutMs: Number(timeout) * 1000 + 30_000 });
    out(id + "\n");
  }
  return 0;
}

export const rm: CtlCommand = {
  name: "rm",
  summary: "remove containers",
  args: "CONTAINER-ID...",
  flags: [],
  operands: ["container"],
  examples: ["crib ctl rm 4d5e6f", "crib ctl ps -a -q --state exited | xargs crib ctl rm"],
  run: runRm,
};

async function runRm({ client, args, out }: CtlContext): Promise<number> {
  for (const id of ids(args, "container")) {
    await client.call("RuntimeService", "RemoveContainer", { container_id: id }, { timeoutMs: 60_000 });
    out(id + "\n");
  }
  return 0;
}

export const inspect: CtlCommand = {
  name: "inspect",
  summary: "container status and crib's view of it",
  args: "[flags] CONTAINER-ID...",
  flags: [OBJECT_OUTPUT],
  operands: ["container"],
  examples: ["crib ctl inspect 4d5e6f", "crib ctl inspect -o yaml 4d5e6f"],
  run: runInspect,
};

async function runInspect({ client, args, out }: CtlContext): Promise<number> {
  for (const id of ids(args, "container")) {
    const res = await client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: true });
    out(structured(flag(args, "output") ?? "json", { status: res.status && protoJson("runtime.v1.ContainerStatus", res.status), ...verboseInfo(res.info) }));
  }
  return 0;
}

export const logs: CtlCommand = {
  name: "logs",
  summary: "print a container's log (-f to follow)",
  args: "[flags] CONTAINER-ID",
  flags: [
    { name: "follow", short: "f", boolean: true, help: "keep printing new lines until the container exits" },
    { name: "timestamps", boolean: true, help: "show each line's timestamp" },
  ],
  operands: ["container"],
  examples: ["crib ctl logs 4d5e6f", "crib ctl logs -f --timestamps 4d5e6f"],
  run: runLogs,
};

/** Print a container's log (the CRI file the kubelet reads), content only. */
async function runLogs({ client, args, out }: CtlContext): Promise<number> {
  const id = args.positionals[0];
  if (!id || args.positionals.length > 1) throw new UsageError("give one CONTAINER-ID");
  const st = (await client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: false })).status;
  if (!st) throw new Error(`container ${id}: the runtime returned no status`);
  if (!st.log_path) {
    throw new Error(`container ${id} has no log file: it was created with an empty log_path (or in a pod with no log_directory), so its output is not kept; \`crib ctl attach ${id}\` shows live output`);
  }
  const stamps = boolFlag(args, "timestamps");
  let offset = 0;
  let carry = "";
  const pump = async () => {
    const file = Bun.file(st.log_path);
    const size = file.size;
    if (size < offset) offset = 0; // rotated
    if (size === offset) return;
    const text = carry + (await file.slice(offset, size).text());
    offset = size;
    const lines = text.split("\n");
    carry = lines.pop() ?? "";
    for (const line of lines) {
      const m = /^(\S+) (stdout|stderr) (F|P) (.*)$/.exec(line);
      if (!m) continue;
      const body = (stamps ? `${m[1]} ` : "") + m[4]!;
      (m[2] === "stderr" ? (t: string) => process.stderr.write(t) : out)(m[3] === "F" ? `${body}\n` : body);
    }
  };
  await pump();
  while (boolFlag(args, "follow")) {
    await Bun.sleep(250);
    await pump();
    const now = (await client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: false })).status;
    if (now?.state === ContainerState.CONTAINER_EXITED) {
      await pump();
      break;
    }
  }
  return 0;
}
