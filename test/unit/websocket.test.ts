// WebSocket framing (RFC 6455) and the streaming token cache, without sockets.
import { describe, expect, test } from "bun:test";
import { negotiate } from "../../src/stream/server.ts";
import { TokenCache, newToken } from "../../src/stream/tokens.ts";
import { encodeWsFrame, websocketAccept, WebSocketProtocolError, WsFrameReader, WsOpcode } from "../../src/stream/websocket.ts";

describe("WebSocket framing", () => {
  test("the accept key of RFC 6455's example", () => {
    expect(websocketAccept("dGhlIHNhbXBsZSBub25jZQ==")).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  test("RFC 6455 examples: unmasked and masked 'Hello'", () => {
    expect(encodeWsFrame(WsOpcode.TEXT, Buffer.from("Hello")).toString("hex")).toBe("810548656c6c6f");
    const masked = encodeWsFrame(WsOpcode.TEXT, Buffer.from("Hello"), { mask: Buffer.from("37fa213d", "hex") });
    expect(masked.toString("hex")).toBe("818537fa213d7f9f4d5158");
    const [f] = new WsFrameReader().push(masked);
    expect(f).toEqual({ fin: true, opcode: WsOpcode.TEXT, masked: true, payload: Buffer.from("Hello") });
  });

  test("16-bit and 64-bit lengths, split anywhere", () => {
    for (const size of [125, 126, 65535, 65536, 200_000]) {
      const payload = Buffer.alloc(size, 7);
      const bytes = encodeWsFrame(WsOpcode.BINARY, payload, { mask: Buffer.from([1, 2, 3, 4]) });
      const r = new WsFrameReader();
      const cut = Math.floor(bytes.length / 3);
      const frames = [...r.push(bytes.subarray(0, 1)), ...r.push(bytes.subarray(1, cut)), ...r.push(bytes.subarray(cut))];
      expect(frames).toHaveLength(1);
      expect(frames[0]!.payload.equals(payload)).toBe(true);
    }
  });

  test("fragments and control frames", () => {
    const bytes = Buffer.concat([
      encodeWsFrame(WsOpcode.BINARY, Buffer.from([0, 1]), { fin: false }),
      encodeWsFrame(WsOpcode.PING, Buffer.from("p")),
      encodeWsFrame(WsOpcode.CONTINUATION, Buffer.from([2])),
    ]);
    const frames = new WsFrameReader().push(bytes);
    expect(frames.map((f) => [f.fin, f.opcode])).toEqual([[false, WsOpcode.BINARY], [true, WsOpcode.PING], [true, WsOpcode.CONTINUATION]]);
  });

  test("reserved bits, oversize and fragmented control frames are protocol errors", () => {
    expect(() => new WsFrameReader().push(Buffer.from([0xc2, 0x00]))).toThrow(WebSocketProtocolError);
    expect(() => new WsFrameReader(1000).push(encodeWsFrame(WsOpcode.BINARY, Buffer.alloc(2000)))).toThrow(/too large/);
    expect(() => new WsFrameReader().push(encodeWsFrame(WsOpcode.PING, Buffer.alloc(1), { fin: false }))).toThrow(/control frame/);
  });
});

describe("stream protocol negotiation", () => {
  test("the client's first supported protocol wins", () => {
    expect(negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"], ["v4.channel.k8s.io", "v5.channel.k8s.io"])).toBe("v5.channel.k8s.io");
    expect(negotiate(["channel.k8s.io"], ["v4.channel.k8s.io"])).toBeUndefined();
  });
});

describe("streaming tokens", () => {
  test("random, URL-safe and at least 128 bits", () => {
    const a = newToken();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, "base64url").length * 8).toBeGreaterThanOrEqual(128);
    expect(newToken()).not.toBe(a);
  });

  test("single use, and expired after the TTL on the monotonic clock", () => {
    let now = 1000;
    const cache = new TokenCache<string>(60_000, 10, () => now);
    const t = cache.put("exec");
    expect(cache.peek(t)).toBe("exec");
    expect(cache.take(t)).toBe("exec");
    expect(cache.take(t)).toBeUndefined();
    const late = cache.put("attach");
    now += 60_001;
    expect(cache.take(late)).toBeUndefined();
    expect(cache.take("no-such-token")).toBeUndefined();
  });

  test("a full cache of live tokens refuses more; expired ones make room", () => {
    let now = 0;
    const cache = new TokenCache<number>(1000, 2, () => now);
    cache.put(1);
    cache.put(2);
    expect(() => cache.put(3)).toThrow(/too many streaming requests/);
    now = 2000;
    expect(() => cache.put(3)).not.toThrow();
  });
});
