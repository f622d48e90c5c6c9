// Waiting on a promise unless a signal aborts first.
//
// Not Promise.race([p, abortedPromise]) in a loop: every race adds a reaction to the
// long-lived aborted promise, and each reaction keeps its race's result alive, so a
// download loop held every chunk it had read until the download ended (~90 MiB of a
// 100 MB pull). Here the listener is removed as soon as `p` settles.

/** `p`'s outcome, or a rejection with the signal's reason if it aborts first. */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {}); // its late rejection is nobody's concern now
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
