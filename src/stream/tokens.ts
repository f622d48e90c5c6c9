// Single-use tokens for streaming URLs: each Exec/Attach/PortForward answer carries
// one, good for one connection within the TTL. Expiry uses a monotonic clock
// (performance.now), so a wall-clock jump (an edge board's RTC-less boot, NTP) can
// neither expire a fresh token nor revive an old one.

import { randomBytes } from "node:crypto";
import { resourceExhausted } from "../errors.ts";

/** 256 random bits, base64url (URL-safe, no padding): 43 characters. */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

export const TOKEN_RE = /^[A-Za-z0-9_-]{22,128}$/;

interface Entry<T> {
  value: T;
  expiresAt: number;
}

export class TokenCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs: number,
    /** Live tokens at most (the kubelet's cache holds 1000 in flight). */
    private readonly max = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Store `value`; returns its token. Throws resource_exhausted when full of live tokens. */
  put(value: T): string {
    if (this.entries.size >= Math.min(64, this.max)) this.prune();
    if (this.entries.size >= this.max) {
      throw resourceExhausted(`too many streaming requests in flight (${this.max} unused tokens); retry once some are used or expire`);
    }
    const token = newToken();
    this.entries.set(token, { value, expiresAt: this.now() + this.ttlMs });
    return token;
  }

  /** The value for `token`, once: a second take, or one after the TTL, gets undefined. */
  take(token: string): T | undefined {
    const e = this.entries.get(token);
    if (e === undefined) return undefined;
    this.entries.delete(token);
    return this.now() <= e.expiresAt ? e.value : undefined;
  }

  /** The value for a live token, without using it up. */
  peek(token: string): T | undefined {
    const e = this.entries.get(token);
    return e !== undefined && this.now() <= e.expiresAt ? e.value : undefined;
  }

  /** Unused tokens still held (expired ones included until pruned). */
  get size(): number {
    return this.entries.size;
  }

  /** Drop expired tokens. */
  prune(): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (now > e.expiresAt) this.entries.delete(k);
  }
}
