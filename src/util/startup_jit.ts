// The compiled binary starts with JavaScriptCore's tier-up thresholds scaled up
// (build/compile.ts, --compile-jit-policy): code that runs once at start-up (module
// bodies, config, recovery, the gRPC service tables) stays in the interpreter instead
// of being compiled by the JIT, which saved ~5 MiB of idle RSS and ~15 ms of start-up.
// A resident face (daemon, monitor) calls this once it serves, so its steady-state code tiers up as usual.

/** Back to the normal JIT policy (a no-op when run from source, which starts at 1). */
export function endStartupJitPolicy(): void {
  Bun.unsafe.setJITPolicy(1);
}
