import { describe, expect, test } from "bun:test";
import { CribError } from "../../src/errors.ts";
import { digestOf, Hasher, isValidDigest, parseDigest } from "../../src/image/digest.ts";
import {
  isDigest,
  looksLikeImageId,
  parseReference,
  pullReference,
  refString,
  repoDigest,
  repoName,
  repoTag,
} from "../../src/image/reference.ts";

const D = `sha256:${"a".repeat(64)}`;
const D512 = `sha512:${"b".repeat(128)}`;

// input -> full normalised reference
const valid: Array<[string, string]> = [
  ["busybox", "docker.io/library/busybox:latest"],
  ["busybox:1.36", "docker.io/library/busybox:1.36"],
  ["library/busybox", "docker.io/library/busybox:latest"],
  ["docker.io/busybox", "docker.io/library/busybox:latest"],
  ["docker.io/library/busybox:musl", "docker.io/library/busybox:musl"],
  ["index.docker.io/library/busybox", "docker.io/library/busybox:latest"],
  ["index.docker.io/busybox:1", "docker.io/library/busybox:1"],
  ["user/app", "docker.io/user/app:latest"],
  ["user/app:v1.2.3", "docker.io/user/app:v1.2.3"],
  ["localhost/app", "localhost/app:latest"],
  ["localhost:5000/x", "localhost:5000/x:latest"],
  ["127.0.0.1:5000/a/b:tag", "127.0.0.1:5000/a/b:tag"],
  ["[::1]:5000/a:1", "[::1]:5000/a:1"],
  ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"],
  ["quay.io/org/sub/repo:t", "quay.io/org/sub/repo:t"],
  ["Example.COM/x", "Example.COM/x:latest"],
  [`busybox@${D}`, `docker.io/library/busybox@${D}`],
  [`busybox:1.36@${D}`, `docker.io/library/busybox:1.36@${D}`],
  [`localhost:5000/x:t@${D512}`, `localhost:5000/x:t@${D512}`],
  ["a/b_c/d__e/f-g/h--i.j", "docker.io/a/b_c/d__e/f-g/h--i.j:latest"],
  ["busybox:_tag", "docker.io/library/busybox:_tag"],
  [`busybox:${"t".repeat(128)}`, `docker.io/library/busybox:${"t".repeat(128)}`],
  ["localhost:5000", "docker.io/library/localhost:5000"],
  ["my-host:5000/app", "my-host:5000/app:latest"],
];

// input -> a piece of the error message
const invalid: Array<[string, string]> = [
  ["", "empty"],
  ["Busybox", "lowercase"],
  ["docker.io/User/app", "lowercase"],
  ["busybox:", "bad tag"],
  ["busybox:.x", "bad tag"],
  ["busybox:-x", "bad tag"],
  [`busybox:${"t".repeat(129)}`, "bad tag"],
  ["busybox@sha256:abc", "bad digest"],
  [`busybox@md5:${"a".repeat(32)}`, "unsupported algorithm"],
  [`busybox@sha256:${"A".repeat(64)}`, "bad digest"],
  ["busybox@", "bad digest"],
  ["a".repeat(64), "image ID"],
  ["bad space", "whitespace"],
  ["a//b", "empty component"],
  ["a/b/", "empty component"],
  ["-a/b", "bad repository path component"],
  ["a/b.", "bad repository path component"],
  ["a/b...c", "bad repository path component"],
  ["localhost:5000/", "path is empty"],
  ["-host.io/a", "bad registry host"],
  [`host.io/${"a".repeat(260)}`, "longer than 255"],
  [":tag", "empty"],
];

describe("parseReference", () => {
  test.each(valid)("%p -> %p", (input, want) => {
    expect(refString(parseReference(input))).toBe(want);
  });

  test.each(invalid)("%p is refused (%p)", (input, problem) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CribError);
    expect((err as CribError).kind).toBe("invalid_argument");
    expect((err as CribError).message).toContain(`"${input.slice(0, 50)}`);
    expect((err as CribError).message).toContain(problem);
  });

  test("has more than 30 cases", () => {
    expect(valid.length + invalid.length).toBeGreaterThan(30);
  });

  test("fields and helpers", () => {
    const r = parseReference(`127.0.0.1:5000/a/b:tag@${D}`);
    expect(r).toEqual({ domain: "127.0.0.1:5000", path: "a/b", tag: "tag", digest: D });
    expect(repoName(r)).toBe("127.0.0.1:5000/a/b");
    expect(repoTag(r)).toBe("127.0.0.1:5000/a/b:tag");
    expect(repoDigest(r, D)).toBe(`127.0.0.1:5000/a/b@${D}`);
    expect(pullReference(r)).toBe(D); // the digest wins
    const digestOnly = parseReference(`busybox@${D}`);
    expect(digestOnly.tag).toBeUndefined();
    expect(repoTag(digestOnly)).toBeUndefined();
    expect(pullReference(parseReference("busybox"))).toBe("latest");
  });

  test("image ids and digests", () => {
    expect(looksLikeImageId("f".repeat(64))).toBe(true);
    expect(looksLikeImageId(`sha256:${"f".repeat(64)}`)).toBe(true);
    expect(looksLikeImageId("busybox")).toBe(false);
    expect(looksLikeImageId("f".repeat(63))).toBe(false);
    expect(isDigest(D)).toBe(true);
    expect(isDigest(D512)).toBe(true);
    expect(isDigest("sha256:abc")).toBe(false);
    expect(isDigest("busybox")).toBe(false);
  });
});

describe("digests", () => {
  test("parseDigest", () => {
    expect(parseDigest(D)).toEqual({ algorithm: "sha256", hex: "a".repeat(64), text: D });
    expect(parseDigest(D512).algorithm).toBe("sha512");
    expect(() => parseDigest(`sha384:${"a".repeat(96)}`)).toThrow(/unsupported algorithm "sha384"/);
    expect(() => parseDigest(`sha256:${"a".repeat(63)}`)).toThrow(/64 lowercase hex/);
    expect(() => parseDigest(`sha512:${"a".repeat(64)}`)).toThrow(/128 lowercase hex/);
    expect(() => parseDigest("sha256")).toThrow(/invalid digest/);
    expect(isValidDigest(`sha256:../../${"a".repeat(58)}`)).toBe(false);
  });

  test("digestOf and Hasher agree", () => {
    const bytes = new TextEncoder().encode("hello world");
    expect(digestOf(bytes)).toBe("sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    const h = new Hasher("sha256");
    h.update(bytes.subarray(0, 5));
    h.update(bytes.subarray(5));
    expect(h.length).toBe(11);
    expect(h.digest()).toBe(digestOf(bytes));
    const h512 = new Hasher("sha512");
    h512.update(bytes);
    expect(h512.digest()).toBe(digestOf(bytes, "sha512"));
  });
});
