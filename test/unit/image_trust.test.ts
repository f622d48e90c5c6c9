// The pure parts of the image signature policy: the config section's shape and
// its error messages (with lines), scope matching, the simple-signing payload
// checks and the verdict for a set of signatures.
import { describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../src/config/config.ts";
import { CribError } from "../../src/errors.ts";
import { parseReference } from "../../src/image/reference.ts";
import { compilePolicy, loadPublicKey, ruleFor } from "../../src/image/trust/keys.ts";
import { candidateScopes, normaliseScope } from "../../src/image/trust/policy.ts";
import { parseSignatureManifest, signatureTag } from "../../src/image/trust/signatures.ts";
import { parsePayload, payloadProblem } from "../../src/image/trust/simple_signing.ts";
import { evaluate } from "../../src/image/trust/verifier.ts";
import { cosignPayload, makeKey, signatureManifest, signPayload } from "../helpers/cosign.ts";
import { tempDir } from "../helpers/tmp.ts";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const dir = tempDir("crib-trust-unit-");
const p256 = makeKey("p256", dir, "p256");
const ed = makeKey("ed25519", dir, "ed");
const stranger = makeKey("p256", dir, "stranger");

function policyFrom(yaml: string) {
  let compiled: ReturnType<typeof compilePolicy> | undefined;
  parseConfig(yaml, "crib.yaml", (c) => {
    compiled = compilePolicy(c.policy);
  });
  return compiled!;
}

describe("policy section", () => {
  test("defaults to accept; shorthand strings and signedBy rules", () => {
    expect(parseConfig("", "x.yaml").policy).toEqual({ default: { type: "accept" }, rules: {} });
    const c = parseConfig(`policy:\n  default: reject\n  rules:\n    "reg.example.com/team": { type: signedBy, keys: [${p256.pubPath}], requireAll: true }\n    "reg.example.com": accept\n`, "x.yaml");
    expect(c.policy.default).toEqual({ type: "reject" });
    expect(c.policy.rules["reg.example.com/team"]).toEqual({ type: "signedBy", keys: [p256.pubPath], requireAll: true });
    expect(c.policy.rules["reg.example.com"]).toEqual({ type: "accept" });
  });

  const bad: [string, string, RegExp][] = [
    ["an unknown rule type", 'policy:\n  rules:\n    "r.example.com": { type: trust }\n', /x\.yaml: policy\.rules\["r\.example\.com"\]\.type: unknown rule type "trust".* \(line 3\)/],
    ["signedBy without keys", "policy:\n  default: signedBy\n", /policy\.default: signedBy needs keys.*\(line 2\)/],
    ["an empty key list", 'policy:\n  rules:\n    "r.example.com":\n      type: signedBy\n      keys: []\n', /policy\.rules\["r\.example\.com"\]\.keys: a signedBy rule needs.*\(line 5\)/],
    ["a relative key path", 'policy:\n  rules:\n    "r.example.com": { type: signedBy, keys: [team.pub] }\n', /keys\[0\]: expected an absolute path.*\(line 3\)/],
    ["keys on an accept rule", 'policy:\n  rules:\n    "r.example.com": { type: accept, keys: [/k.pub] }\n', /\.keys: only a signedBy rule takes keys/],
    ["an unknown key", "policy:\n  defaults: accept\n", /policy\.defaults: unknown key \(known keys here: default, rules\) \(line 2\)/],
  ];
  for (const [name, yaml, re] of bad) {
    test(`refuses ${name}, naming the key path and line`, () => {
      expect(() => parseConfig(yaml, "x.yaml")).toThrow(ConfigError);
      expect(() => parseConfig(yaml, "x.yaml")).toThrow(re);
    });
  }

  test("key files: missing, not PEM, an unsupported type; each named with its line", () => {
    const notPem = join(dir, "junk.pub");
    writeFileSync(notPem, "not a key\n");
    const x25519 = join(dir, "x25519.pub");
    writeFileSync(x25519, generateKeyPairSync("x25519").publicKey.export({ type: "spki", format: "pem" }));
    const yaml = (k: string) => `log: { level: info }\npolicy:\n  rules:\n    "r.example.com":\n      type: signedBy\n      keys:\n        - ${p256.pubPath}\n        - ${k}\n`;
    expect(() => policyFrom(yaml("/nope/k.pub"))).toThrow(/crib\.yaml: policy\.rules\["r\.example\.com"\]\.keys\[1\]: cannot read public key \/nope\/k\.pub: .*\(line 8\)/);
    expect(() => policyFrom(yaml(notPem))).toThrow(/keys\[1\]: .*junk\.pub is not a PEM public key/);
    expect(() => policyFrom(yaml(x25519))).toThrow(/keys\[1\]: public key .*x25519\.pub is of an unsupported type x25519/);
  });

  test("a scope that is not a host, repository or prefix is refused with its line when the policy is compiled", () => {
    expect(() => policyFrom('policy:\n  rules:\n    "team/app": reject\n')).toThrow(/policy\.rules\["team\/app"\]: scope "team\/app" must start with a registry host.*\(line 3\)/);
    expect(() => policyFrom('policy:\n  rules:\n    "r.example.com/app:v1": reject\n')).toThrow(/names a tag or digest/);
  });

  test("two spellings of one scope are refused", () => {
    expect(() => policyFrom('policy:\n  rules:\n    "docker.io/busybox": reject\n    "docker.io/library/busybox": accept\n')).toThrow(/the same scope as "docker\.io\/busybox"/);
  });
});

describe("scopes", () => {
  test("normalised as image names are", () => {
    expect(normaliseScope("docker.io/busybox")).toBe("docker.io/library/busybox");
    expect(normaliseScope("index.docker.io")).toBe("docker.io");
    expect(normaliseScope("127.0.0.1:5000/team")).toBe("127.0.0.1:5000/team");
    expect(normaliseScope("localhost")).toBe("localhost");
  });

  test("candidates run from the repository to the host", () => {
    expect(candidateScopes(parseReference("r.example.com/a/b/c:1"))).toEqual(["r.example.com/a/b/c", "r.example.com/a/b", "r.example.com/a", "r.example.com"]);
  });

  test("the most specific scope wins; a prefix matches at component boundaries only", () => {
    const p = policyFrom(`policy:\n  default: reject\n  rules:\n    "r.example.com": accept\n    "r.example.com/team": { type: signedBy, keys: [${p256.pubPath}] }\n    "r.example.com/team/open": accept\n`);
    const scope = (text: string) => ruleFor(p, parseReference(text)).scope;
    expect(scope("r.example.com/team/app:1")).toBe("r.example.com/team");
    expect(scope("r.example.com/team/open:1")).toBe("r.example.com/team/open");
    expect(scope("r.example.com/team/open/sub:1")).toBe("r.example.com/team/open");
    expect(scope("r.example.com/teams/app:1")).toBe("r.example.com");
    expect(scope("other.example.com/team/app:1")).toBe("default");
  });
});

describe("payloads", () => {
  const ref = parseReference("r.example.com/team/app:v1");
  test("cosign's payload parses; the digest and repository must be the image's", () => {
    const p = parsePayload(cosignPayload("r.example.com/team/app", D1));
    expect(p).toEqual({ reference: "r.example.com/team/app", digest: D1 });
    expect(payloadProblem(p, [D1], ref)).toBeUndefined();
    expect(payloadProblem(p, [D2, D1], ref)).toBeUndefined(); // signed index, platform manifest pulled
    expect(payloadProblem(p, [D2], ref)).toContain(`the signature is for ${D1}, not for the image pulled (${D2})`);
    expect(payloadProblem(p, [D1], parseReference("r.example.com/team/other:v1"))).toBe("the signature is for the image r.example.com/team/app, not r.example.com/team/other");
    expect(payloadProblem(parsePayload(cosignPayload("r.example.com/team/app:v2", D1)), [D1], ref)).toBe("the signature is for the tag v2, not v1");
    // docker.io names normalise on both sides.
    expect(payloadProblem(parsePayload(cosignPayload("busybox", D1)), [D1], parseReference("docker.io/library/busybox:1"))).toBeUndefined();
  });

  test("malformed payloads say what is wrong", () => {
    expect(() => parsePayload(new TextEncoder().encode("nope"))).toThrow("not JSON");
    expect(() => parsePayload(new TextEncoder().encode('{"critical":{"type":"x"}}'))).toThrow("not a container image signature");
    expect(() => parsePayload(new TextEncoder().encode('{"critical":{"type":"cosign container image signature","image":{}}}'))).toThrow("docker-reference");
  });

  test("signature manifests: only simple-signing layers with a signature annotation count", () => {
    const payload = cosignPayload("r.example.com/team/app", D1);
    const sig = signPayload(p256, payload);
    const m = signatureManifest([{ payload, signature: sig }]);
    const entries = parseSignatureManifest(m.bytes);
    expect(entries).toHaveLength(1);
    expect(Buffer.from(entries[0]!.signature).equals(Buffer.from(sig))).toBe(true);
    const other = JSON.parse(new TextDecoder().decode(m.bytes)) as { layers: { mediaType: string }[] };
    other.layers[0]!.mediaType = "application/octet-stream";
    expect(parseSignatureManifest(new TextEncoder().encode(JSON.stringify(other)))).toEqual([]);
    expect(signatureTag(D1)).toBe(`sha256-${"1".repeat(64)}.sig`);
  });
});

describe("verdicts", () => {
  const ref = parseReference("r.example.com/team/app:v1");
  const signed = (key: typeof p256, digest = D1, identity = "r.example.com/team/app") => {
    const payload = cosignPayload(identity, digest);
    return { payload, signature: signPayload(key, payload), source: "test" };
  };
  const policy = policyFrom(`policy:\n  rules:\n    "r.example.com/team": { type: signedBy, keys: [${p256.pubPath}, ${ed.pubPath}] }\n    "r.example.com/both": { type: signedBy, keys: [${p256.pubPath}, ${ed.pubPath}], requireAll: true }\n    "r.example.com/no": reject\n`);
  const rule = ruleFor(policy, ref);
  const reason = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(CribError);
      expect((e as CribError).kind).toBe("signature_invalid");
      return (e as Error).message;
    }
    throw new Error("expected a refusal");
  };

  test("any one trusted key is enough by default; the match names the key", () => {
    const v = evaluate(rule, ref, [D1], [signed(stranger), signed(ed)]);
    expect(v.matched.map((m) => m.key)).toEqual([ed.pubPath]);
    expect(v.summary).toStartWith(`signed by ${ed.pubPath} (ed25519)`);
  });

  test("the reasons a kubelet shows", () => {
    expect(reason(() => evaluate(rule, ref, [D1], [], ["r.example.com/team/app:sha256-1.sig"]))).toStartWith("no signature found for r.example.com/team/app:v1 (sha256:111");
    expect(reason(() => evaluate(rule, ref, [D1], [signed(stranger)]))).toStartWith("no key matched: 1 signature(s)");
    expect(reason(() => evaluate(rule, ref, [D2], [signed(p256, D1)]))).toStartWith(`the signature is for ${D1}, not for the image pulled (${D2})`);
    const tampered = signed(p256);
    tampered.payload = cosignPayload("r.example.com/team/app", D2);
    expect(reason(() => evaluate(rule, ref, [D2], [tampered]))).toStartWith("no key matched");
    const both = ruleFor(policy, parseReference("r.example.com/both/app:v1"));
    const bothRef = parseReference("r.example.com/both/app:v1");
    expect(reason(() => evaluate(both, bothRef, [D1], [signed(p256, D1, "r.example.com/both/app")]))).toContain(`by ${ed.pubPath} (the rule requires all of its keys)`);
    expect(evaluate(both, bothRef, [D1], [signed(p256, D1, "r.example.com/both/app"), signed(ed, D1, "r.example.com/both/app")]).matched).toHaveLength(2);
    const no = ruleFor(policy, parseReference("r.example.com/no/app:v1"));
    expect(reason(() => evaluate(no, parseReference("r.example.com/no/app:v1"), [D1], []))).toBe(`r.example.com/no/app:v1 (${D1}) is rejected by policy rule "r.example.com/no" (reject)`);
  });

  test("keys load with their type and SPKI fingerprint", () => {
    const k = loadPublicKey(p256.pubPath);
    expect(k.type).toBe("ecdsa-p256");
    expect(k.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(loadPublicKey(ed.pubPath).type).toBe("ed25519");
  });
});
