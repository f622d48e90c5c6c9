import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateCriTypes, generateMessageTables, PROTO_FILES } from "../../build/gen_protocol.ts";
import { criMethods } from "../../src/protocol/proto.ts";

const top = join(import.meta.dir, "../..");

test("src/protocol/types.ts is generated from the current proto files", () => {
  const protos = PROTO_FILES.map((f) => readFileSync(join(top, f), "utf8"));
  const current = readFileSync(join(top, "src/protocol/types.ts"), "utf8");
  expect(current).toBe(generateCriTypes(protos));
});

test("src/protocol/messages.ts, the tables the codecs walk, is generated from the current proto files", () => {
  const protos = PROTO_FILES.map((f) => readFileSync(join(top, f), "utf8"));
  expect(readFileSync(join(top, "src/protocol/messages.ts"), "utf8")).toBe(generateMessageTables(protos));
});

test("the embedded proto yields both services", () => {
  expect(criMethods("RuntimeService").map((m) => m.name)).toContain("RunPodSandbox");
  expect(criMethods("ImageService").map((m) => m.name)).toContain("PullImage");
});
