// docs/cli.md is generated from the command table; every command has what a person needs.
import { expect, test } from "bun:test";
import { cliMarkdown, CLI_DOC } from "../../build/cli_docs.ts";
import { DEFAULT_CONFIG_PATH } from "../../src/config/config.ts";
import { COMMON_FLAGS, type CommandSpec } from "../../src/cli/command.ts";
import { FACES, SERVE } from "../../src/cli/faces.ts";
import { CTL_COMMANDS } from "../../src/ctl/commands.ts";

const all: [string, CommandSpec][] = [
  ...FACES.map((f): [string, CommandSpec] => [`crib ${f.name}`, f]),
  ...CTL_COMMANDS.map((c): [string, CommandSpec] => [`crib ctl ${c.name}`, c]),
];

test("docs/cli.md is current (regenerate with: bun build/cli_docs.ts)", async () => {
  expect(await Bun.file(CLI_DOC).text()).toBe(cliMarkdown());
});

test("every command has a summary, a usage, help for each flag and an example that runs it", () => {
  for (const [path, spec] of all) {
    expect(spec.summary.length, path).toBeGreaterThan(10);
    expect(spec.examples.length, path).toBeGreaterThan(0);
    for (const e of spec.examples) expect(e, path).toContain(path.replace(/^crib /, ""));
    for (const f of spec.flags) expect(f.help.length, `${path} --${f.name}`).toBeGreaterThan(5);
    // No command redefines the flags every command has.
    for (const f of spec.flags) expect(COMMON_FLAGS.some((c) => c.name === f.name || (c.short && c.short === f.short)), `${path} --${f.name}`).toBe(false);
    if (!spec.hidden) expect(cliMarkdown(), path).toContain(`${path}: ${spec.summary}`);
  }
});

test("command names and aliases are unique", () => {
  const names = CTL_COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  expect(new Set(names).size).toBe(names.length);
});

test("the default config path shown in help is the one the config loader uses", () => {
  expect(SERVE.flags.find((f) => f.name === "config")?.default).toBe(DEFAULT_CONFIG_PATH);
});
