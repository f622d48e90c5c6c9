// GetContainerEvents: the stream the kubelet's evented PLEG reads. Each pod and
// container transition on the lifecycle bus becomes a ContainerEventResponse
// carrying the pod's status and its containers' statuses as they are at that
// moment (built once, shared by every subscriber). As containerd and CRI-O do,
// a pod sandbox's own transitions are sent as container events whose
// container_id is the sandbox id (created+started when ready, stopped, deleted).
// Unlike containerd (which sends no status once a sandbox is gone), a deleted
// sandbox's event carries its last status, marked not ready: the kubelet skips
// events without one.
import type { CriContext } from "./context.ts";
import { unavailable } from "../errors.ts";
import { Fanout, type Subscription } from "../events/fanout.ts";
import { lifecycle, type LifecycleEvent } from "../events/bus.ts";
import type { PodRecord } from "../pod/pod_store.ts";
import { nowNs } from "../state/boot.ts";
import { toCriContainerStatus } from "./container_convert.ts";
import { serverStream } from "./rpc.ts";
import { toCriPodStatus } from "./sandbox_status.ts";
import { ContainerEventType, PodSandboxState, type ContainerEventResponse, type GetEventsRequest, type Out } from "../protocol/types.ts";

type EventMessage = Out<ContainerEventResponse>;

/**
 * A subscriber may fall this far behind (messages its client has not read,
 * beyond what gRPC buffers) before it is dropped. CRI-O's event channel holds
 * 1000; the byte bound keeps pods with huge annotations from pinning much memory.
 */
export const EVENT_BACKLOG_LIMITS = { maxBacklog: 1000, maxBacklogBytes: 8 * 1024 * 1024 };

class ContainerEventHub {
  readonly fanout = new Fanout<EventMessage>(EVENT_BACKLOG_LIMITS, approxSize, "GetContainerEvents");
  private listening = false;

  constructor(private readonly d: CriContext) {}

  subscribe(write: (m: EventMessage) => boolean): Subscription {
    if (!this.listening) {
      this.listening = true;
      lifecycle.subscribe((e) => {
        if (this.fanout.subscribers > 0) for (const m of this.toMessages(e)) this.fanout.publish(m);
      });
    }
    return this.fanout.subscribe(write);
  }

  private toMessages(e: LifecycleEvent): EventMessage[] {
    switch (e.kind) {
      case "pod-ready":
        return [this.message(e.podId, e.podId, ContainerEventType.CONTAINER_CREATED_EVENT), this.message(e.podId, e.podId, ContainerEventType.CONTAINER_STARTED_EVENT)];
      case "pod-stopped":
        return [this.message(e.podId, e.podId, ContainerEventType.CONTAINER_STOPPED_EVENT)];
      case "pod-removed":
        return [this.message(e.pod.id, e.pod.id, ContainerEventType.CONTAINER_DELETED_EVENT, { ...e.pod, state: PodSandboxState.SANDBOX_NOTREADY })];
      case "container-created":
        return [this.message(e.id, e.podId, ContainerEventType.CONTAINER_CREATED_EVENT)];
      case "container-started":
        return [this.message(e.id, e.podId, ContainerEventType.CONTAINER_STARTED_EVENT)];
      case "container-exited":
        return [this.message(e.id, e.podId, ContainerEventType.CONTAINER_STOPPED_EVENT)];
      case "container-removed":
        return [this.message(e.id, e.podId, ContainerEventType.CONTAINER_DELETED_EVENT)];
    }
  }

  private message(containerId: string, podId: string, type: ContainerEventType, podSnapshot?: PodRecord): EventMessage {
    const pod = podSnapshot ?? this.d.pods.store.get(podId);
    return {
      container_id: containerId,
      container_event_type: type,
      created_at: nowNs(),
      pod_sandbox_status: pod ? toCriPodStatus(pod) : null,
      containers_statuses: this.d.containers.store.list(podId).map((c) => toCriContainerStatus(this.d, c)),
    };
  }
}

const hubs = new WeakMap<CriContext, ContainerEventHub>();

function hubFor(d: CriContext): ContainerEventHub {
  let h = hubs.get(d);
  if (!h) hubs.set(d, (h = new ContainerEventHub(d)));
  return h;
}

export const containerEvents = serverStream<GetEventsRequest, ContainerEventResponse>(async (d, _req, send, ctx) => {
  // send says false once the client is not reading and the stream buffers.
  const sub = hubFor(d).subscribe((m: EventMessage) => send(m));
  const cancel = () => sub.cancel();
  ctx.signal.addEventListener("abort", cancel, { once: true });
  if (ctx.signal.aborted) sub.cancel();
  try {
    await sub.done;
  } finally {
    ctx.signal.removeEventListener("abort", cancel);
  }
});

/** End every GetContainerEvents stream (daemon shutdown): clients see UNAVAILABLE and resubscribe. */
export function closeContainerEvents(d: CriContext): void {
  hubs.get(d)?.fanout.close(unavailable("GetContainerEvents: the daemon is shutting down; subscribe again when it is back"));
}

/** Subscribers now, and subscribers dropped for falling behind since start (for /metrics). */
export function containerEventStats(d: CriContext): { subscribers: number; dropped: number } {
  const h = hubs.get(d);
  return { subscribers: h?.fanout.subscribers ?? 0, dropped: h?.fanout.dropped ?? 0 };
}

/** A rough encoded size: string lengths plus a few bytes per field. */
export function approxSize(v: unknown): number {
  if (typeof v === "string") return v.length + 2;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return 9;
  if (v === null || v === undefined) return 0;
  if (Buffer.isBuffer(v)) return v.length + 2;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + approxSize(x), 2);
  if (typeof v === "object") {
    let n = 2;
    for (const [k, x] of Object.entries(v)) n += k.length + approxSize(x);
    return n;
  }
  return 0;
}
