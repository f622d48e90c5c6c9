// How a face's result becomes the process's exit: its code, or a message and 2 for a
// usage error, 1 for anything else (a stack only for what is not a CribError).
import { UsageError } from "./args.ts";
import { CribError } from "../errors.ts";

export function exitWith(result: Promise<number>): void {
  result.then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`crib: ${err.message}\nRun "crib help" for usage.\n`);
        process.exit(2);
      }
      if (err instanceof CribError) {
        process.stderr.write(`crib: ${err.message}\n`);
        process.exit(1);
      }
      process.stderr.write(`crib: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
