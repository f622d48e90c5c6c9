// The image signature policy's scopes, as operators know them from
// containers-policy.json: a registry host ("registry.example.com",
// "127.0.0.1:5000"), a repository ("registry.example.com/team/app") or a
// repository prefix at a path-component boundary ("registry.example.com/team");
// the most specific scope wins. The section's shape: src/config/policy_section.ts.
import { parseReference, repoName, type ImageRef } from "../reference.ts";

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

/**
 * The canonical form of a scope: "host" or "host/path" as image names are
 * normalised (docker.io/busybox -> docker.io/library/busybox).
 */
export function normaliseScope(scope: string): string {
  const slash = scope.indexOf("/");
  const host = slash < 0 ? scope : scope.slice(0, slash);
  if (!HOST.test(host) || !(host.includes(".") || host.includes(":") || host === "localhost")) {
    throw new Error(`scope "${scope}" must start with a registry host (registry.example.com, host:port or localhost), optionally followed by /repository`);
  }
  if (slash < 0) return host === "index.docker.io" ? "docker.io" : host;
  const rest = scope.slice(slash + 1);
  if (/[:@]/.test(rest)) throw new Error(`scope "${scope}" names a tag or digest: a scope is a host, repository or repository prefix`);
  let ref: ImageRef;
  try {
    ref = parseReference(scope);
  } catch (e) {
    throw new Error(`scope "${scope}" is not a repository name: ${(e as Error).message.replace(/^invalid image reference "[^"]*": /, "")}`);
  }
  return repoName(ref);
}

/** Scopes that could match `ref`, most specific first: the repository, its prefixes, the host. */
export function candidateScopes(ref: ImageRef): string[] {
  const parts = ref.path.split("/");
  const out: string[] = [];
  for (let n = parts.length; n >= 1; n--) out.push(`${ref.domain}/${parts.slice(0, n).join("/")}`);
  out.push(ref.domain);
  return out;
}

/** The rule that governs `ref`: the most specific matching scope, else the default. */
export function matchRule<R>(rules: ReadonlyMap<string, R>, fallback: R, ref: ImageRef): { scope: string; rule: R } {
  for (const scope of candidateScopes(ref)) {
    const rule = rules.get(scope);
    if (rule !== undefined) return { scope, rule };
  }
  return { scope: "default", rule: fallback };
}
