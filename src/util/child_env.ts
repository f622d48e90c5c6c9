// The environment for processes the daemon starts (runc, CNI plugins, the
// pause process). systemd's variables are for the daemon alone: a child that
// inherited NOTIFY_SOCKET could tell systemd it is ready or stopping. Bun.spawn
// without `env` passes the environment the process started with, so every
// spawn passes this explicitly.
const DAEMON_ONLY = ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"];

export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !DAEMON_ONLY.includes(k)) env[k] = v;
  return { ...env, ...extra };
}
