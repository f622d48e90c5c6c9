// Write back-pressure on a streaming connection's socket, shared by the SPDY
// and WebSocket connections: writers pause while more than HIGH_WATER bytes
// wait in the socket, and resume on drain (or close).
import type net from "node:net";

const HIGH_WATER = 256 * 1024;

export function saturated(socket: net.Socket): boolean {
  return socket.writableLength > HIGH_WATER;
}

export function drained(socket: net.Socket, closed: boolean): Promise<void> {
  if (!saturated(socket) || closed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}
