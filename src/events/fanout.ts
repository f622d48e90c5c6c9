// One message to many subscribers, none of whom can hold up the publisher or
// the others. Each subscriber's transport (a gRPC stream) buffers what its
// client has not read yet and says so: write() returns false once its buffer is
// full. What a subscriber is sent while its transport says so is its backlog;
// a backlog over the limit drops the subscriber with resource_exhausted, so a
// stalled client costs a bounded amount of memory and nothing else.
import { resourceExhausted } from "../errors.ts";

export interface FanoutLimits {
  /** Messages sent past a full transport buffer before the subscriber is dropped. */
  maxBacklog: number;
  /** The same limit in (estimated) bytes. */
  maxBacklogBytes: number;
}

export interface Subscription {
  /** Resolves when cancelled; rejects when dropped (overflow) or closed by the publisher. */
  readonly done: Promise<void>;
  cancel(): void;
}

interface Subscriber<T> {
  write: (m: T) => boolean;
  backlog: number;
  backlogBytes: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Fanout<T> {
  private readonly subs = new Set<Subscriber<T>>();
  /** Subscribers dropped for falling behind, since start. */
  dropped = 0;

  constructor(
    private readonly limits: FanoutLimits,
    private readonly sizeOf: (m: T) => number,
    private readonly what = "subscription",
  ) {}

  get subscribers(): number {
    return this.subs.size;
  }

  /** `write` sends one message; it returns false when the transport is buffering. */
  subscribe(write: (m: T) => boolean): Subscription {
    let sub!: Subscriber<T>;
    const done = new Promise<void>((resolve, reject) => {
      sub = { write, backlog: 0, backlogBytes: 0, resolve, reject };
    });
    this.subs.add(sub);
    return {
      done,
      cancel: () => {
        if (this.subs.delete(sub)) sub.resolve();
      },
    };
  }

  publish(m: T): void {
    if (this.subs.size === 0) return;
    const size = this.sizeOf(m);
    for (const s of this.subs) {
      let accepted: boolean;
      try {
        accepted = s.write(m);
      } catch {
        this.subs.delete(s); // the transport is gone
        s.resolve();
        continue;
      }
      if (accepted) {
        s.backlog = 0;
        s.backlogBytes = 0;
        continue;
      }
      s.backlog++;
      s.backlogBytes += size;
      if (s.backlog > this.limits.maxBacklog || s.backlogBytes > this.limits.maxBacklogBytes) {
        this.subs.delete(s);
        this.dropped++;
        s.reject(resourceExhausted(
          `${this.what}: the client fell behind (${s.backlog} messages, about ${s.backlogBytes} bytes not read); ` +
            `it was dropped so it cannot hold up the daemon: subscribe again and relist`,
        ));
      }
    }
  }

  /** End every subscription with `reason` (daemon shutdown). */
  close(reason: Error): void {
    for (const s of this.subs) s.reject(reason);
    this.subs.clear();
  }
}
