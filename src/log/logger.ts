// Structured logs: one JSON object a line on stderr, so journald and log
// shippers can parse them without guessing.

export type LogLevel = "debug" | "info" | "warn" | "error";
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LOG_LEVELS = Object.keys(rank) as LogLevel[];

export type LogFields = Record<string, unknown>;

let threshold = rank.info;
let sink: (line: string) => void = (line) => process.stderr.write(line + "\n");

export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

/** Redirect log lines (tests use this to capture them). */
export function setLogSink(fn: (line: string) => void): void {
  sink = fn;
}

export class Logger {
  constructor(private readonly bound: LogFields = {}) {}

  /** A logger that adds these fields to every line (component, pod id, ...). */
  with(fields: LogFields): Logger {
    return new Logger({ ...this.bound, ...fields });
  }

  debug(msg: string, fields?: LogFields): void { this.emit("debug", msg, fields); }
  info(msg: string, fields?: LogFields): void { this.emit("info", msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.emit("warn", msg, fields); }
  error(msg: string, fields?: LogFields): void { this.emit("error", msg, fields); }

  private emit(level: LogLevel, msg: string, fields?: LogFields): void {
    if (rank[level] < threshold) return;
    const rec: LogFields = { time: new Date().toISOString(), level, msg, ...this.bound, ...fields };
    for (const [k, v] of Object.entries(rec)) {
      if (v instanceof Error) rec[k] = v.message;
      else if (typeof v === "bigint") rec[k] = v.toString();
    }
    sink(JSON.stringify(rec));
  }
}

export const log = new Logger();
