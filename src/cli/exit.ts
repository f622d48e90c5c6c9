// How a command's result becomes the process's exit: its code; help on stdout and 0;
// a usage error as the message, the command's usage line and 2; any other failure as
// one line and 1, with the stack only when asked for (--debug or CRIB_DEBUG=1).
import { HelpRequested, UsageError } from "./args.ts";
import { debugWanted, type CommandSpec } from "./command.ts";
import { renderHelp, usageLine, type HelpExtra } from "./help.ts";

export interface Running {
  spec: CommandSpec;
  /** How a person types it: "crib serve", "crib ctl ps". */
  path: string;
  help?: HelpExtra;
}

/** Print what `err` means for a person and return the exit code. */
export function reportError(err: unknown, running?: Running): number {
  const who = running?.path ?? "crib";
  if (err instanceof HelpRequested && running) {
    process.stdout.write(renderHelp(running.spec, running.path, running.help));
    return 0;
  }
  if (err instanceof UsageError) {
    const usage = running ? `Usage: ${usageLine(running.spec, running.path)}\nRun "${running.path} --help" for its flags and examples.` : `Run "crib help" for usage.`;
    process.stderr.write(`${who}: ${err.message}\n${usage}\n`);
    return 2;
  }
  const message = err instanceof Error ? err.message : String(err);
  const stack = debugWanted() && err instanceof Error && err.stack ? `\n${err.stack}` : "";
  process.stderr.write(`${who}: ${message.trim()}${stack}\n`);
  return 1;
}

export function exitWith(result: Promise<number>, running?: Running): void {
  result.then(
    (code) => process.exit(code),
    (err: unknown) => process.exit(reportError(err, running)),
  );
}
