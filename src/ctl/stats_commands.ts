// crib ctl stats, statsp and events, in crictl's shape.
import { boolFlag, flag, parseArgs, UsageError } from "../cli/args.ts";
import { ContainerEventType, ContainerState, type ContainerEventResponse, type ContainerStats, type PodSandboxStats } from "../protocol/types.ts";
import { CriError } from "./client.ts";
import type { CtlContext } from "./context.ts";
import { humanBytes, shortId, table } from "./format.ts";

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));

const labelsOf = (values: string[] | undefined) => Object.fromEntries((values ?? []).map((l) => l.split("=", 2) as [string, string]));

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

export async function ctlStats({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "all", short: "a", boolean: true, help: "all containers, not only running ones" },
    { name: "pod", short: "p", help: "only containers of this pod (id or prefix)" },
    { name: "id", help: "only this container (id or prefix)" },
    { name: "label", repeat: true, help: "key=value" },
    { name: "seconds", short: "s", help: "sample CPU over this many seconds (default 1)" },
    { name: "output", short: "o", help: "table (default) or json" },
  ]);
  const filter = { id: flag(args, "id") ?? args.positionals[0] ?? "", pod_sandbox_id: flag(args, "pod") ?? "", label_selector: labelsOf(args.flags.get("label")) };
  const listed = await client.call("RuntimeService", "ListContainers", {
    filter: { id: filter.id, pod_sandbox_id: filter.pod_sandbox_id, label_selector: filter.label_selector, state: boolFlag(args, "all") ? null : { state: ContainerState.CONTAINER_RUNNING } },
  });
  const wanted = new Map(listed.containers.map((c) => [c.id, c]));
  const first = await client.call("RuntimeService", "ListContainerStats", { filter });
  if (flag(args, "output") === "json") {
    out(json({ stats: first.stats.filter((s) => wanted.has(s.attributes?.id ?? "")) }) + "\n");
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

export async function ctlStatsp({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "id", help: "only this pod (id or prefix)" },
    { name: "label", repeat: true, help: "key=value" },
    { name: "seconds", short: "s", help: "sample CPU over this many seconds (default 1)" },
    { name: "output", short: "o", help: "table (default) or json" },
  ]);
  const filter = { id: flag(args, "id") ?? args.positionals[0] ?? "", label_selector: labelsOf(args.flags.get("label")) };
  const first = await client.call("RuntimeService", "ListPodSandboxStats", { filter });
  if (flag(args, "output") === "json") {
    out(json({ stats: first.stats }) + "\n");
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

export async function ctlEvents({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "output", short: "o", help: "text (default) or json (one object a line)" }]);
  const asJson = flag(args, "output") === "json";
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await client.stream("RuntimeService", "GetContainerEvents", {}, (e) => out(asJson ? json(e) + "\n" : formatEvent(e)), { signal: ac.signal });
  } catch (e) {
    // The daemon ended the stream (shutting down, or we fell behind): say so plainly.
    if (!(e instanceof CriError)) throw e;
    process.stderr.write(`crib: ${e.message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  return 0;
}
