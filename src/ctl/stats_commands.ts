// crib ctl stats, statsp and events, in crictl's shape.
import { boolFlag, flag, pairs, UsageError, type FlagSpec } from "../cli/args.ts";
import { ContainerEventType, ContainerState, type ContainerEventResponse, type ContainerStats, type PodSandboxStats } from "../protocol/types.ts";
import { LABEL, TABLE_OUTPUT, type CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";
import { humanBytes, protoJson, shortId, structured, table } from "./format.ts";

const SECONDS: FlagSpec = { name: "seconds", short: "s", value: "SECONDS", default: "1", help: "sample CPU over this many seconds" };

function seconds(v: string | undefined): number {
  const s = Number(v ?? "1");
  if (!Number.isFinite(s) || s <= 0) throw new UsageError("--seconds must be a positive number");
  return s;
}

/** CPU % between two cumulative readings (100% = one core busy). */
export function cpuPercent(before: { t: bigint; ns: bigint } | undefined, after: { t: bigint; ns: bigint } | undefined): string {
  if (!before || !after || after.t <= before.t || after.ns < before.ns) return "-";
  return ((Number(after.ns - before.ns) / Number(after.t - before.t)) * 100).toFixed(2);
}

const cpuOf = (s: { cpu: ContainerStats["cpu"] } | null | undefined) =>
  s?.cpu?.usage_core_nano_seconds ? { t: s.cpu.timestamp, ns: s.cpu.usage_core_nano_seconds.value } : undefined;
const bytes = (v: { value: bigint } | null | undefined) => (v ? humanBytes(Number(v.value)) : "-");

export const stats: CtlCommand = {
  name: "stats",
  summary: "container resource usage: CPU, memory, disk (running ones; -a for all)",
  args: "[flags] [CONTAINER-ID]",
  flags: [
    { name: "all", short: "a", boolean: true, help: "all containers, not only running ones" },
    { name: "pod", short: "p", value: "POD-ID", complete: "pod", help: "only containers of this pod (id or prefix)" },
    { name: "id", value: "CONTAINER-ID", complete: "container", help: "only this container (id or prefix)" },
    LABEL,
    SECONDS,
    TABLE_OUTPUT,
  ],
  operands: ["container"],
  examples: ["crib ctl stats", "crib ctl stats -o json --pod 1a2b3c"],
  run: runStats,
};

async function runStats({ client, args, out }: CtlContext): Promise<number> {
  if (args.positionals.length > 1) throw new UsageError(`stats takes at most one CONTAINER-ID (got ${args.positionals.join(" ")})`);
  const filter = { id: flag(args, "id") ?? args.positionals[0] ?? "", pod_sandbox_id: flag(args, "pod") ?? "", label_selector: pairs(args, "label") };
  const listed = await client.call("RuntimeService", "ListContainers", {
    filter: { id: filter.id, pod_sandbox_id: filter.pod_sandbox_id, label_selector: filter.label_selector, state: boolFlag(args, "all") ? null : { state: ContainerState.CONTAINER_RUNNING } },
  });
  const wanted = new Map(listed.containers.map((c) => [c.id, c]));
  const first = await client.call("RuntimeService", "ListContainerStats", { filter });
  const format = flag(args, "output") ?? "table";
  if (format !== "table") {
    out(structured(format, protoJson("runtime.v1.ListContainerStatsResponse", { stats: first.stats.filter((s) => wanted.has(s.attributes?.id ?? "")) })));
    return 0;
  }
  await Bun.sleep(seconds(flag(args, "seconds")) * 1000);
  const second = await client.call("RuntimeService", "ListContainerStats", { filter });
  const before = new Map(first.stats.map((s) => [s.attributes?.id ?? "", s]));
  const rows = second.stats
    .filter((s) => wanted.has(s.attributes?.id ?? ""))
    .map((s) => {
      const id = s.attributes?.id ?? "";
      return [
        shortId(id), s.attributes?.metadata?.name ?? "", cpuPercent(cpuOf(before.get(id)), cpuOf(s)), bytes(s.memory?.working_set_bytes),
        bytes(s.writable_layer?.used_bytes), s.writable_layer?.inodes_used ? String(s.writable_layer.inodes_used.value) : "-",
      ];
    });
  out(table(["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"], rows));
  return 0;
}

export const statsp: CtlCommand = {
  name: "statsp",
  summary: "pod sandbox resource usage: CPU, memory, network, processes",
  args: "[flags] [POD-ID]",
  flags: [{ name: "id", value: "POD-ID", complete: "pod", help: "only this pod (id or prefix)" }, LABEL, SECONDS, TABLE_OUTPUT],
  operands: ["pod"],
  examples: ["crib ctl statsp", "crib ctl statsp -o yaml 1a2b3c"],
  run: runStatsp,
};

async function runStatsp({ client, args, out }: CtlContext): Promise<number> {
  if (args.positionals.length > 1) throw new UsageError(`statsp takes at most one POD-ID (got ${args.positionals.join(" ")})`);
  const filter = { id: flag(args, "id") ?? args.positionals[0] ?? "", label_selector: pairs(args, "label") };
  const first = await client.call("RuntimeService", "ListPodSandboxStats", { filter });
  const format = flag(args, "output") ?? "table";
  if (format !== "table") {
    out(structured(format, protoJson("runtime.v1.ListPodSandboxStatsResponse", first)));
    return 0;
  }
  await Bun.sleep(seconds(flag(args, "seconds")) * 1000);
  const second = await client.call("RuntimeService", "ListPodSandboxStats", { filter });
  const before = new Map(first.stats.map((s: PodSandboxStats) => [s.attributes?.id ?? "", s]));
  const rows = second.stats.map((s) => {
    const id = s.attributes?.id ?? "";
    const net = s.linux?.network?.default_interface;
    return [
      shortId(id), s.attributes?.metadata?.name ?? "", cpuPercent(cpuOf(before.get(id)?.linux), cpuOf(s.linux)), bytes(s.linux?.memory?.working_set_bytes),
      net ? `${bytes(net.rx_bytes)} / ${bytes(net.tx_bytes)}` : "-", s.linux?.process?.process_count ? String(s.linux.process.process_count.value) : "-",
    ];
  });
  out(table(["POD", "NAME", "CPU %", "MEM", "NET RX / TX", "PIDS"], rows));
  return 0;
}

const EVENT_NAMES: Record<number, string> = {
  [ContainerEventType.CONTAINER_CREATED_EVENT]: "CREATED",
  [ContainerEventType.CONTAINER_STARTED_EVENT]: "STARTED",
  [ContainerEventType.CONTAINER_STOPPED_EVENT]: "STOPPED",
  [ContainerEventType.CONTAINER_DELETED_EVENT]: "DELETED",
};

/** One line an event: time, type, whose (pod sandbox or container), pod. */
export function formatEvent(e: ContainerEventResponse): string {
  const time = new Date(Number(e.created_at / 1_000_000n)).toISOString();
  const pod = e.pod_sandbox_status;
  const isPod = pod?.id === e.container_id;
  const c = e.containers_statuses.find((s) => s.id === e.container_id);
  const what = isPod ? "pod" : "container";
  const name = isPod ? "" : ` ${c?.metadata?.name ?? ""}`;
  const podName = pod?.metadata ? `${pod.metadata.namespace}/${pod.metadata.name}` : "?";
  return `${time} ${EVENT_NAMES[e.container_event_type] ?? e.container_event_type} ${what} ${shortId(e.container_id)}${name} (pod ${podName})\n`;
}

export const events: CtlCommand = {
  name: "events",
  summary: "print container and pod events as they happen, until Ctrl-C",
  args: "[flags]",
  flags: [{ name: "output", short: "o", value: "FORMAT", values: ["text", "json"], default: "text", help: "output format (json: one object a line)" }],
  examples: ["crib ctl events", "crib ctl events -o json | jq .containerEventType"],
  run: runEvents,
};

async function runEvents({ client, args, out }: CtlContext): Promise<number> {
  const asJson = flag(args, "output") === "json";
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await client.stream("RuntimeService", "GetContainerEvents", {}, (e) => out(asJson ? JSON.stringify(protoJson("runtime.v1.ContainerEventResponse", e)) + "\n" : formatEvent(e)), { signal: ac.signal });
    // The daemon ending the stream (shutting down, or we fell behind) is a CriError:
    // crib ctl prints it as its one-line failure.
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  return 0;
}
