// Fan-out of events to subscribers with bounded backlogs, and the lifecycle bus.
import { describe, expect, test } from "bun:test";
import { CribError } from "../../src/errors.ts";
import { LifecycleBus } from "../../src/events/bus.ts";
import { setLogSink } from "../../src/log/logger.ts";
import { Fanout } from "../../src/events/fanout.ts";

/** A transport that accepts `room` messages, then buffers (write returns false) until drained. */
function transport(room: number) {
  const got: number[] = [];
  let free = room;
  return {
    got,
    write: (m: number) => {
      got.push(m);
      return --free >= 0;
    },
    drain: () => {
      free = room;
    },
  };
}

describe("fanout", () => {
  test("every subscriber gets every message in order", () => {
    const f = new Fanout<number>({ maxBacklog: 10, maxBacklogBytes: 1e9 }, () => 1);
    const a = transport(100);
    const b = transport(100);
    f.subscribe(a.write);
    f.subscribe(b.write);
    for (let i = 0; i < 5; i++) f.publish(i);
    expect(a.got).toEqual([0, 1, 2, 3, 4]);
    expect(b.got).toEqual([0, 1, 2, 3, 4]);
  });

  test("a subscriber that stops reading is dropped with resource_exhausted; the others go on", async () => {
    const f = new Fanout<number>({ maxBacklog: 3, maxBacklogBytes: 1e9 }, () => 1, "Events");
    const fast = transport(1000);
    const slow = transport(2);
    f.subscribe(fast.write);
    const s = f.subscribe(slow.write);
    const outcome = s.done.then(() => "resolved", (e: unknown) => e);
    for (let i = 0; i < 10; i++) f.publish(i);
    const err = await outcome;
    expect(err).toBeInstanceOf(CribError);
    expect((err as CribError).kind).toBe("resource_exhausted");
    expect((err as CribError).message).toContain("Events");
    expect(slow.got).toEqual([0, 1, 2, 3, 4, 5]); // 2 accepted + 4 over (the 4th is one too many)
    expect(fast.got).toHaveLength(10);
    expect(f.subscribers).toBe(1);
    expect(f.dropped).toBe(1);
  });

  test("a client that catches up resets its backlog", () => {
    const f = new Fanout<number>({ maxBacklog: 3, maxBacklogBytes: 1e9 }, () => 1);
    const t = transport(1);
    f.subscribe(t.write);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 4; i++) f.publish(i); // 1 accepted, 3 backlogged: at the limit, not over
      t.drain();
    }
    expect(f.subscribers).toBe(1);
  });

  test("the byte bound drops before the count bound", async () => {
    const f = new Fanout<string>({ maxBacklog: 1000, maxBacklogBytes: 100 }, (m) => m.length);
    const s = f.subscribe(() => false);
    f.publish("x".repeat(60));
    f.publish("x".repeat(60));
    await expect(s.done).rejects.toThrow("fell behind");
  });

  test("cancel resolves, close rejects with the reason, a throwing transport is forgotten", async () => {
    const f = new Fanout<number>({ maxBacklog: 1, maxBacklogBytes: 1e9 }, () => 1);
    const a = f.subscribe(() => true);
    a.cancel();
    await a.done;
    const b = f.subscribe(() => {
      throw new Error("stream closed");
    });
    f.publish(1);
    await b.done;
    const c = f.subscribe(() => true);
    f.close(new Error("shutting down"));
    await expect(c.done).rejects.toThrow("shutting down");
    expect(f.subscribers).toBe(0);
  });
});

describe("lifecycle bus", () => {
  test("publishes synchronously; a failing listener does not stop the others", () => {
    const bus = new LifecycleBus();
    const seen: string[] = [];
    const logged: string[] = [];
    setLogSink((l) => logged.push(l));
    bus.subscribe(() => {
      throw new Error("bug");
    });
    const off = bus.subscribe((e) => seen.push(e.kind));
    bus.publish({ kind: "pod-ready", podId: "p" });
    expect(seen).toEqual(["pod-ready"]);
    off();
    bus.publish({ kind: "pod-stopped", podId: "p" });
    expect(seen).toEqual(["pod-ready"]);
    expect(bus.listenerCount).toBe(1);
    setLogSink((l) => process.stderr.write(l + "\n"));
    expect(logged.some((l) => l.includes("lifecycle listener failed"))).toBe(true);
  });
});
