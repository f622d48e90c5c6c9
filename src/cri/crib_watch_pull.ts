import { parseReference, refString } from "../image/reference.ts";
import { serverStream } from "./rpc.ts";
import type { PullProgress, WatchPullRequest } from "../protocol/types.ts";

// Streams progress of pulls of one image until the client goes away.
export const cribWatchPull = serverStream<WatchPullRequest, PullProgress>(async (d, req, send, ctx) => {
  const key = refString(parseReference(req.image));
  await new Promise<void>((resolve) => {
    const stop = d.images.progress.watch(key, (s) => {
      send({
        image: s.image,
        layers: s.layers.map((l) => ({ digest: l.digest, size: BigInt(l.size), downloaded: BigInt(l.downloaded), phase: l.phase })),
        done: s.done,
        error: s.error,
        elapsed_ns: s.elapsedNs,
        verification: s.verification,
      });
      if (s.done) finish();
    });
    const finish = () => {
      stop();
      resolve();
    };
    ctx.signal.addEventListener("abort", finish);
  });
});
