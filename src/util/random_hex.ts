// Random identifiers from the Web Crypto global: unlike node:crypto's randomBytes,
// it loads no module, and a daemon that imported node:crypto only for ids paid ~1 ms
// of start-up for it.

/** `bytes` random bytes as lowercase hex (2 x bytes characters). */
export function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}
