// The "name is reserved" cure (ANCHORS.md, pain 1). A create that the client
// gave up on (the kubelet's 4-minute timeout) still finishes and is recorded
// as unclaimed; the kubelet's retry with the same name gets that result
// instead of an error. A retry that arrives while the first is still running
// waits for it and shares its result.
import { alreadyExists } from "../errors.ts";
import { SingleFlight } from "./limiter.ts";

export interface Claimable { id: string; unclaimed: boolean }

export class ClaimedCreates {
  private readonly inFlight = new SingleFlight<string>();

  constructor(
    private readonly what: string,
    private readonly lookup: (key: string) => Claimable | undefined,
    private readonly setUnclaimed: (id: string, unclaimed: boolean) => void,
  ) {}

  /**
   * Run `create` (which records its object as unclaimed) once per name key;
   * the object is claimed by the first caller still waiting for the answer.
   */
  async run(key: string, signal: AbortSignal, create: () => Promise<string>): Promise<string> {
    const existing = this.lookup(key);
    if (existing && !this.inFlight.has(key)) {
      if (!existing.unclaimed) throw alreadyExists(`${this.what} name "${key}" is already in use by ${existing.id}; remove it first or use another attempt number`);
      this.claim(existing.id, signal);
      return existing.id;
    }
    const id = await this.inFlight.run(key, create);
    this.claim(id, signal);
    return id;
  }

  private claim(id: string, signal: AbortSignal): void {
    if (!signal.aborted) this.setUnclaimed(id, false);
  }
}
