import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { socketGroupId } from "../../src/daemon/socket.ts";
import { CribError } from "../../src/errors.ts";
import { rejection } from "../helpers/reject.ts";
import { tempDir } from "../helpers/tmp.ts";

test("socketGroup: a name from the group file, a number as it is, empty for root's group", async () => {
  const file = join(tempDir("crib-group-"), "group");
  writeFileSync(file, "root:x:0:\nkubelet:x:997:alice\nbad-line\nnogroup:x:65534:\n");
  expect(socketGroupId("kubelet", file)).toBe(997);
  expect(socketGroupId("nogroup", file)).toBe(65534);
  expect(socketGroupId("1234", file)).toBe(1234);
  expect(socketGroupId("", file)).toBeUndefined();
  const e = await rejection(Promise.resolve().then(() => socketGroupId("kube", file)), CribError);
  expect(e.kind).toBe("failed_precondition");
  expect(e.message).toBe(`socketGroup "kube": no such group in ${file}`);
});
