// Live progress of pulls, for `crib ctl pull` (crib.v1 WatchPull). Updates
// are coalesced so a fast download does not flood watchers.
export type LayerPhase = "waiting" | "downloading" | "unpacking" | "done" | "cached";

export interface LayerState { digest: string; size: number; downloaded: number; phase: LayerPhase }

export interface PullSnapshot {
  image: string;
  layers: LayerState[];
  done: boolean;
  error: string;
  elapsedNs: bigint;
  /** The signature policy step: what is being checked, then what let the image through. */
  verification: string;
}

type Watcher = (s: PullSnapshot) => void;

const EMIT_INTERVAL_MS = 200;

export class PullTracker {
  private readonly layers = new Map<string, LayerState>();
  private readonly started = process.hrtime.bigint();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private verifying = "";

  constructor(readonly image: string, private readonly hub: PullProgressHub) {}

  layer(digest: string, size: number, phase: LayerPhase): void {
    this.layers.set(digest, { digest, size, downloaded: phase === "cached" || phase === "done" ? size : 0, phase });
    this.schedule();
  }

  update(digest: string, patch: Partial<LayerState>): void {
    const l = this.layers.get(digest);
    if (!l) return;
    Object.assign(l, patch);
    this.schedule();
  }

  verification(text: string): void {
    this.verifying = text;
    this.schedule();
  }

  snapshot(done = false, error = ""): PullSnapshot {
    return { image: this.image, layers: [...this.layers.values()].map((l) => ({ ...l })), done, error, elapsedNs: process.hrtime.bigint() - this.started, verification: this.verifying };
  }

  finish(error?: string): void {
    clearTimeout(this.timer);
    this.hub.emit(this.snapshot(true, error ?? ""));
    this.hub.end(this);
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.hub.emit(this.snapshot());
    }, EMIT_INTERVAL_MS);
  }
}

export class PullProgressHub {
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly active = new Map<string, PullTracker>();

  start(image: string): PullTracker {
    const t = new PullTracker(image, this);
    this.active.set(image, t);
    return t;
  }

  end(t: PullTracker): void {
    if (this.active.get(t.image) === t) this.active.delete(t.image);
  }

  emit(s: PullSnapshot): void {
    for (const w of this.watchers.get(s.image) ?? []) w(s);
  }

  /** Watch pulls of `image`; the current state is sent at once if one runs. Returns an unsubscribe. */
  watch(image: string, w: Watcher): () => void {
    let set = this.watchers.get(image);
    if (!set) this.watchers.set(image, (set = new Set()));
    set.add(w);
    const running = this.active.get(image);
    if (running) w(running.snapshot());
    return () => {
      set.delete(w);
      if (set.size === 0) this.watchers.delete(image);
    };
  }
}
