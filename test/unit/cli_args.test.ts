import { expect, test } from "bun:test";
import { boolFlag, flag, parseArgs, UsageError } from "../../src/cli/args.ts";

const specs = [
  { name: "config", short: "c", help: "" },
  { name: "interactive", short: "i", boolean: true, help: "" },
  { name: "tty", short: "t", boolean: true, help: "" },
  { name: "label", repeat: true, help: "" },
];

test("flags, inline values, combined short booleans, repeats and positionals", () => {
  const a = parseArgs(["-it", "--config=/x", "--label", "a=1", "--label", "b=2", "pod", "--", "-x"], specs);
  expect(boolFlag(a, "interactive")).toBe(true);
  expect(boolFlag(a, "tty")).toBe(true);
  expect(flag(a, "config")).toBe("/x");
  expect(a.flags.get("label")).toEqual(["a=1", "b=2"]);
  expect(a.positionals).toEqual(["pod", "-x"]);
});

test("unknown flags and missing values are usage errors", () => {
  expect(() => parseArgs(["--nope"], specs)).toThrow(UsageError);
  expect(() => parseArgs(["-z"], specs)).toThrow(/unknown flag -z/);
  expect(() => parseArgs(["--config"], specs)).toThrow(/--config needs a value/);
});
