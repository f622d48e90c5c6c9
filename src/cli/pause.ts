// `crib pause`: PID 1 of a pod's shared PID namespace (shareProcessNamespace).
// It holds the namespace, reaps the orphans reparented to it and exits on
// SIGTERM/SIGINT. Only pods that share a PID namespace get one.
import { waitAny } from "../sys/process.ts";

export async function pause(): Promise<number> {
  const reap = () => {
    while (waitAny() !== null) {
      // keep reaping
    }
  };
  process.on("SIGCHLD", reap);
  return new Promise<number>((resolve) => {
    process.on("SIGTERM", () => resolve(0));
    process.on("SIGINT", () => resolve(0));
    // Keep the event loop alive without waking up.
    setInterval(reap, 2 ** 31 - 1);
  });
}
