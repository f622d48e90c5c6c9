import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateCriDescriptor, generateCriTypes, PROTO_FILES } from "../../build/gen_protocol.ts";
import { criMethods } from "../../src/protocol/proto.ts";

const top = join(import.meta.dir, "../..");

test("src/protocol/types.ts is generated from the current proto files", () => {
  const protos = PROTO_FILES.map((f) => readFileSync(join(top, f), "utf8"));
  const current = readFileSync(join(top, "src/protocol/types.ts"), "utf8");
  expect(current).toBe(generateCriTypes(protos));
});

test("src/protocol/descriptor.json, which the daemon loads, is generated from the current proto files", () => {
  const protos = PROTO_FILES.map((f) => readFileSync(join(top, f), "utf8"));
  expect(readFileSync(join(top, "src/protocol/descriptor.json"), "utf8")).toBe(generateCriDescriptor(protos));
});

test("the embedded proto yields both services", () => {
  expect(criMethods("RuntimeService").map((m) => m.name)).toContain("RunPodSandbox");
  expect(criMethods("ImageService").map((m) => m.name)).toContain("PullImage");
});
