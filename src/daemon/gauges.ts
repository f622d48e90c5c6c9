// Gauges read from the daemon's state at scrape time: images, containers and
// pods by state, event subscribers, and the daemon process's own memory and CPU
// (the standard process_* names of Prometheus client libraries).
import { readdirSync } from "node:fs";
import { containerEventStats } from "../cri/container_events.ts";
import type { CriContext } from "../cri/context.ts";
import { registry } from "../metrics/crib_metrics.ts";
import type { FamilySnapshot } from "../metrics/registry.ts";

const CONTAINER_STATES = ["created", "running", "exited", "unknown"];
const POD_STATES = ["ready", "notready"];
const startedAt = Date.now() / 1000 - process.uptime();

function byState(states: string[], records: { state: number }[]): { labels: { state: string }; value: number }[] {
  const counts = states.map(() => 0);
  for (const r of records) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return states.map((state, i) => ({ labels: { state }, value: counts[i] ?? 0 }));
}

function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

/** Into the registry /metrics serves; called once, when the endpoint is on. */
export function registerDaemonGauges(d: CriContext): void {
  registry.collect((): FamilySnapshot[] => {
    const events = containerEventStats(d);
    const cpu = process.cpuUsage();
    const fds = openFds();
    const gauge = (name: string, help: string, value: number): FamilySnapshot => ({ name, help, type: "gauge", samples: [{ labels: {}, value }] });
    return [
      gauge("crib_images", "Images in the store.", d.images.list().length),
      { name: "crib_containers", help: "Containers by state.", type: "gauge", samples: byState(CONTAINER_STATES, d.containers.list()) },
      { name: "crib_pod_sandboxes", help: "Pod sandboxes by state.", type: "gauge", samples: byState(POD_STATES, d.pods.list()) },
      gauge("crib_container_events_subscribers", "GetContainerEvents streams open now.", events.subscribers),
      { name: "crib_container_events_dropped_subscribers_total", help: "GetContainerEvents subscribers dropped because they fell behind.", type: "counter", samples: [{ labels: {}, value: events.dropped }] },
      gauge("process_resident_memory_bytes", "Resident memory size in bytes.", process.memoryUsage.rss()),
      { name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", type: "counter", samples: [{ labels: {}, value: (cpu.user + cpu.system) / 1e6 }] },
      gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", Math.round(startedAt * 1000) / 1000),
      ...(fds !== undefined ? [gauge("process_open_fds", "Number of open file descriptors.", fds)] : []),
    ];
  });
}
