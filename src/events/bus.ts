// Lifecycle events of pods and containers, published by the pod and container
// components at each transition and read by whoever subscribes (the CRI's
// GetContainerEvents). Publishing is synchronous and never blocks: a subscriber
// must return at once (queue, do not await).
import type { PodRecord } from "../pod/pod_store.ts";
import { log } from "../log/logger.ts";

export type LifecycleEvent =
  | { kind: "container-created" | "container-started" | "container-exited" | "container-removed"; id: string; podId: string }
  | { kind: "pod-ready" | "pod-stopped"; podId: string }
  /** The record as it was, since the store no longer has it. */
  | { kind: "pod-removed"; pod: PodRecord };

export type LifecycleListener = (e: LifecycleEvent) => void;

const logger = log.with({ component: "events" });

export class LifecycleBus {
  private readonly listeners = new Set<LifecycleListener>();

  /** Returns the unsubscribe function. */
  subscribe(fn: LifecycleListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  publish(e: LifecycleEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        // A listener's bug must not fail the transition that published.
        logger.error("lifecycle listener failed", { event: e.kind, error: err });
      }
    }
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}

/** The daemon's bus (one daemon per process). */
export const lifecycle = new LifecycleBus();
