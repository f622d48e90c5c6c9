// crib ctl for pods and containers, in crictl's shape:
// pods, runp, stopp, rmp, inspectp, ps, create, start, stop, rm, inspect, logs.
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { boolFlag, flag, parseArgs, UsageError } from "../cli/args.ts";
import type { ContainerConfig, Out, PodSandboxConfig } from "../protocol/types.ts";
import { ContainerState, PodSandboxState } from "../protocol/types.ts";
import type { CtlContext } from "./context.ts";
import { shortId, table } from "./format.ts";

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x), 2) + "\n";
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
  const v: unknown = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new UsageError(`${path}: a ${what} must be a JSON or YAML object`);
  return v as Out<T>;
}

function one(argv: string[], usage: string): string[] {
  const args = parseArgs(argv, []);
  if (args.positionals.length === 0) throw new UsageError(`usage: ${usage}`);
  return args.positionals;
}

export async function ctlPods({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "quiet", short: "q", boolean: true, help: "only ids" },
    { name: "state", help: "ready|notready" },
    { name: "label", repeat: true, help: "key=value" },
    { name: "output", short: "o", help: "json" },
  ]);
  const state = flag(args, "state");
  const res = await client.call("RuntimeService", "ListPodSandbox", {
    filter: {
      state: state ? { state: state === "ready" ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY } : null,
      label_selector: Object.fromEntries((args.flags.get("label") ?? []).map((l) => l.split("=", 2) as [string, string])),
    },
  });
  if (flag(args, "output") === "json") {
    out(json({ items: res.items }));
    return 0;
  }
  if (boolFlag(args, "quiet")) {
    out(res.items.map((p) => p.id + "\n").join(""));
    return 0;
  }
  out(table(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"], res.items.map((p) => [
    shortId(p.id), ago(p.created_at), (podStates[p.state] ?? "?").replace("SANDBOX_", ""), p.metadata?.name ?? "", p.metadata?.namespace ?? "", String(p.metadata?.attempt ?? 0), p.runtime_handler,
  ])));
  return 0;
}

export async function ctlRunp({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "runtime", short: "r", help: "runtime handler" }]);
  const file = args.positionals[0];
  if (!file) throw new UsageError("usage: crib ctl runp [--runtime HANDLER] POD-CONFIG.(json|yaml)");
  const config = await readConfig<PodSandboxConfig>(file, "pod config");
  const res = await client.call("RuntimeService", "RunPodSandbox", { config, runtime_handler: flag(args, "runtime") ?? "" }, { timeoutMs: 240_000 });
  out(res.pod_sandbox_id + "\n");
  return 0;
}

export async function ctlStopp({ client, argv, out }: CtlContext): Promise<number> {
  for (const id of one(argv, "crib ctl stopp POD-ID...")) {
    await client.call("RuntimeService", "StopPodSandbox", { pod_sandbox_id: id }, { timeoutMs: 240_000 });
    out(`Stopped sandbox ${id}\n`);
  }
  return 0;
}

export async function ctlRmp({ client, argv, out }: CtlContext): Promise<number> {
  for (const id of one(argv, "crib ctl rmp POD-ID...")) {
    await client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: id }, { timeoutMs: 240_000 });
    out(`Removed sandbox ${id}\n`);
  }
  return 0;
}

export async function ctlInspectp({ client, argv, out }: CtlContext): Promise<number> {
  for (const id of one(argv, "crib ctl inspectp POD-ID...")) {
    const res = await client.call("RuntimeService", "PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
    const info = Object.fromEntries(Object.entries(res.info).map(([k, v]) => [k, JSON.parse(v) as unknown]));
    out(json({ status: res.status, ...info }));
  }
  return 0;
}

export async function ctlPs({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "all", short: "a", boolean: true, help: "include exited containers" },
    { name: "quiet", short: "q", boolean: true, help: "only ids" },
    { name: "pod", short: "p", help: "pod id" },
    { name: "label", repeat: true, help: "key=value" },
    { name: "output", short: "o", help: "json" },
  ]);
  const res = await client.call("RuntimeService", "ListContainers", {
    filter: {
      pod_sandbox_id: flag(args, "pod") ?? "",
      state: boolFlag(args, "all") ? null : { state: ContainerState.CONTAINER_RUNNING },
      label_selector: Object.fromEntries((args.flags.get("label") ?? []).map((l) => l.split("=", 2) as [string, string])),
    },
  });
  if (flag(args, "output") === "json") {
    out(json({ containers: res.containers }));
    return 0;
  }
  if (boolFlag(args, "quiet")) {
    out(res.containers.map((c) => c.id + "\n").join(""));
    return 0;
  }
  out(table(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"], res.containers.map((c) => [
    shortId(c.id), c.image?.image ?? "", ago(c.created_at), (containerStates[c.state] ?? "?").replace("CONTAINER_", ""), c.metadata?.name ?? "", String(c.metadata?.attempt ?? 0), shortId(c.pod_sandbox_id),
  ])));
  return 0;
}

export async function ctlCreate({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, []);
  const [pod, containerFile, podFile] = args.positionals;
  if (!pod || !containerFile || !podFile) throw new UsageError("usage: crib ctl create POD-ID CONTAINER-CONFIG POD-CONFIG");
  const config = await readConfig<ContainerConfig>(containerFile, "container config");
  const sandbox = await readConfig<PodSandboxConfig>(podFile, "pod config");
  const res = await client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: pod, config, sandbox_config: sandbox }, { timeoutMs: 240_000 });
  out(res.container_id + "\n");
  return 0;
}

export async function ctlStart({ client, argv, out }: CtlContext): Promise<number> {
  for (const id of one(argv, "crib ctl start CONTAINER-ID...")) {
    await client.call("RuntimeService", "StartContainer", { container_id: id });
    out(id + "\n");
  }
  return 0;
}

export async function ctlStop({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "timeout", short: "t", help: "seconds before SIGKILL (default 10)" }]);
  const timeout = BigInt(flag(args, "timeout") ?? "10");
  if (args.positionals.length === 0) throw new UsageError("usage: crib ctl stop [--timeout S] CONTAINER-ID...");
  for (const id of args.positionals) {
    await client.call("RuntimeService", "StopContainer", { container_id: id, timeout }, { timeoutMs: Number(timeout) * 1000 + 30_000 });
    out(id + "\n");
  }
  return 0;
}

export async function ctlRm({ client, argv, out }: CtlContext): Promise<number> {
  for (const id of one(argv, "crib ctl rm CONTAINER-ID...")) {
    await client.call("RuntimeService", "RemoveContainer", { container_id: id }, { timeoutMs: 60_000 });
    out(id + "\n");
  }
  return 0;
}

export async function ctlInspect({ client, argv, out }: CtlContext): Promise<number> {
  for (const id of one(argv, "crib ctl inspect CONTAINER-ID...")) {
    const res = await client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: true });
    const info = Object.fromEntries(Object.entries(res.info).map(([k, v]) => [k, JSON.parse(v) as unknown]));
    out(json({ status: res.status, ...info }));
  }
  return 0;
}

/** Print a container's log (the CRI file the kubelet reads), content only. */
export async function ctlLogs({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "follow", short: "f", boolean: true, help: "keep printing new lines" },
    { name: "timestamps", boolean: true, help: "show timestamps" },
  ]);
  const id = args.positionals[0];
  if (!id) throw new UsageError("usage: crib ctl logs [-f] [--timestamps] CONTAINER-ID");
  const st = (await client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: false })).status;
  if (!st) throw new UsageError(`container ${id}: the runtime returned no status`);
  if (!st.log_path) {
    throw new UsageError(`container ${id} has no log file: it was created with an empty log_path (or in a pod with no log_directory), so its output is not kept; \`crib ctl attach ${id}\` shows live output`);
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
