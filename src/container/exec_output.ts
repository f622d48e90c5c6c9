// ExecSync's answer is one gRPC message, and the kubelet accepts at most
// 16 MiB per message (its default max receive size, as crib's own server
// sends): stdout and stderr together must fit, not each on its own. A stream
// cut to fit ends with a mark saying so, as the monitor marks its own cap.

/** Bytes left for stdout + stderr once the message's framing (tags, lengths, exit code) is counted. */
export const EXEC_SYNC_RESPONSE_BUDGET = 16 * 1024 * 1024 - 4096;

const encoder = new TextEncoder();

function mark(cap: number): Uint8Array {
  return encoder.encode(`\n[crib: output truncated to fit the ExecSync response: more than ${cap} bytes]\n`);
}

function cut(bytes: Uint8Array, keep: number): Uint8Array {
  if (bytes.length <= keep) return bytes;
  const m = mark(keep);
  const out = new Uint8Array(keep);
  out.set(bytes.subarray(0, Math.max(0, keep - m.length)));
  out.set(m.subarray(0, keep), Math.max(0, keep - m.length));
  return out;
}

/**
 * Cut stdout and stderr so together they take at most `budget` bytes: a
 * stream that fits in half the budget keeps everything, the other gets the rest.
 */
export function fitExecOutput(stdout: Uint8Array, stderr: Uint8Array, budget = EXEC_SYNC_RESPONSE_BUDGET): { stdout: Uint8Array; stderr: Uint8Array; cut: boolean } {
  if (stdout.length + stderr.length <= budget) return { stdout, stderr, cut: false };
  const half = Math.floor(budget / 2);
  let outKeep: number;
  let errKeep: number;
  if (stderr.length <= half) {
    errKeep = stderr.length;
    outKeep = budget - errKeep;
  } else if (stdout.length <= half) {
    outKeep = stdout.length;
    errKeep = budget - outKeep;
  } else {
    outKeep = half;
    errKeep = budget - half;
  }
  return { stdout: cut(stdout, outKeep), stderr: cut(stderr, errKeep), cut: true };
}
