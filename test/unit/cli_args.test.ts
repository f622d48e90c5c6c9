import { expect, test } from "bun:test";
import { boolFlag, flag, helpAsked, pairs, parseArgs, UsageError } from "../../src/cli/args.ts";
import { protoJson } from "../../src/ctl/format.ts";

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

test("-h/--help is found anywhere, but not as a flag's value, after --, or in exec's command line", () => {
  expect(helpAsked(["pod", "--help"], specs)).toBe(true);
  expect(helpAsked(["-h"], specs)).toBe(true);
  expect(helpAsked(["--config", "--help"], specs)).toBe(false);
  expect(helpAsked(["--", "--help"], specs)).toBe(false);
  expect(helpAsked(["-it", "ctr", "ls", "--help"], specs, { stopAtPositional: true })).toBe(false);
  expect(helpAsked(["-it", "--help", "ctr"], specs, { stopAtPositional: true })).toBe(true);
});

test("allowed values are checked; stopAtPositional leaves the rest to the command", () => {
  const out = [{ name: "output", short: "o", values: ["json", "yaml"], help: "" }];
  expect(() => parseArgs(["-o", "xml"], out)).toThrow(/--output must be one of json, yaml \(got "xml"\)/);
  expect(flag(parseArgs(["-o", "yaml"], out), "output")).toBe("yaml");
  const a = parseArgs(["-i", "ctr", "sh", "-c", "--tty"], specs, { stopAtPositional: true });
  expect(a.positionals).toEqual(["ctr", "sh", "-c", "--tty"]);
  expect(boolFlag(a, "tty")).toBe(false);
});

test("KEY=VALUE flags keep '=' in values and refuse a missing key", () => {
  expect(pairs(parseArgs(["--label", "a=b=c", "--label", "x="], specs), "label")).toEqual({ a: "b=c", x: "" });
  expect(() => pairs(parseArgs(["--label", "novalue"], specs), "label")).toThrow(UsageError);
});

test("CRI messages print in crictl's JSON shape: camelCase, enum names, int64 as strings, maps kept", () => {
  const j = protoJson("runtime.v1.ListContainersResponse", {
    containers: [{
      id: "abc", pod_sandbox_id: "pod", metadata: { name: "web", attempt: 1 }, image: null, image_ref: "sha256:x",
      state: 1, created_at: 1700000000000000000n, labels: { "io.kubernetes.pod_name": "p" }, annotations: {}, image_id: "",
    }],
  });
  expect(j).toEqual({
    containers: [{
      id: "abc", podSandboxId: "pod", metadata: { name: "web", attempt: 1 }, imageRef: "sha256:x",
      state: "CONTAINER_RUNNING", createdAt: "1700000000000000000", labels: { "io.kubernetes.pod_name": "p" }, annotations: {}, imageId: "",
    }],
  });
});
