// A client connection as the HTTP/2 server sees it: bytes from the client go
// through an AuthorityRewriter, bytes to the client go straight to the socket.
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { AuthorityRewriter } from "./authority_rewriter.ts";

export function rewritingStream(socket: Socket): Duplex {
  const rewriter = new AuthorityRewriter();
  let waitingForDrain: (() => void) | undefined;
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, done) {
      // Done at once unless the socket's buffer is full: a callback per flush would
      // add a turn of the event loop to every answer.
      if (socket.write(chunk)) done();
      else waitingForDrain = done;
    },
    final(done) {
      socket.end();
      done();
    },
    destroy(err, done) {
      socket.destroy(err ?? undefined);
      done(err);
    },
  });
  socket.on("drain", () => {
    const done = waitingForDrain;
    waitingForDrain = undefined;
    done?.();
  });
  socket.on("data", (chunk: Buffer) => {
    let more = true;
    for (const piece of rewriter.push(chunk)) more = duplex.push(piece);
    if (!more) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}
