// The gRPC length-prefixed message (gRPC over HTTP/2): a compressed flag octet, a
// 4-octet big-endian length, then the message. Shared by the server and crib ctl's client.

export const MESSAGE_PREFIX = 5;

/** `body` as one uncompressed gRPC message. */
export function frameMessage(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(MESSAGE_PREFIX + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, MESSAGE_PREFIX);
  return out;
}
