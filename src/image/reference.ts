// Image references, parsed and normalised the way the kubelet, docker and
// containerd read them:
//   busybox                 -> docker.io/library/busybox:latest
//   user/app                -> docker.io/user/app:latest
//   localhost:5000/x        -> localhost:5000/x:latest
//   index.docker.io/x/y:1   -> docker.io/x/y:1
//   repo:tag@sha256:...     -> both kept; the digest is what gets pulled
// Grammar (OCI distribution / docker reference):
//   reference := name [":" tag] ["@" digest]
//   name      := [domain "/"] path-component ("/" path-component)*
//   domain    := host [":" port]; host a DNS name, IPv4 address or [IPv6]
// The first component is a domain only when it holds "." or ":", is
// "localhost", or has an uppercase letter (path components never do).
import { invalidArgument } from "../errors.ts";
import { parseDigest } from "./digest.ts";

/** A parsed, normalised image reference. */
export interface ImageRef {
  /** Registry host, with port if any ("docker.io", "127.0.0.1:5000"). */
  domain: string;
  /** Repository path within the registry ("library/busybox"). */
  path: string;
  /** Tag; "latest" when the text named neither tag nor digest. */
  tag?: string;
  /** Digest ("sha256:..."); when present it wins over the tag for pulling. */
  digest?: string;
}

export const DEFAULT_DOMAIN = "docker.io";
export const DEFAULT_TAG = "latest";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
const MAX_NAME_LENGTH = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const IMAGE_ID = /^(?:sha256:)?[a-f0-9]{64}$/;

/** Parse and normalise an image reference; throws invalid_argument naming the text and the problem. */
export function parseReference(text: string): ImageRef {
  const fail = (problem: string) => invalidArgument(`invalid image reference "${clip(text)}": ${problem}`);
  if (text === "") throw fail("it is empty");
  if (/^[a-f0-9]{64}$/.test(text)) {
    throw fail("a 64-digit hexadecimal string is an image ID, not a repository name");
  }
  if (/\s/.test(text)) throw fail("it contains whitespace");

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digest = parseDigest(d).text;
    } catch (e) {
      throw fail(`bad digest "${clip(d)}": ${(e as Error).message.replace(/^invalid digest "[^"]*": /, "")}`);
    }
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw fail(`bad tag "${clip(tag)}": a tag is 1-128 of [A-Za-z0-9_.-] and may not start with "." or "-"`);
    }
  }
  if (rest === "") throw fail("the repository name is empty");

  let domain: string;
  let path: string;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  if (slash < 0 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    path = rest;
  } else {
    domain = first;
    path = rest.slice(slash + 1);
    if (!HOST.test(domain)) throw fail(`bad registry host "${clip(domain)}"`);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (path === "") throw fail("the repository path is empty");
  if (/[A-Z]/.test(path)) throw fail("repository name must be lowercase");
  for (const component of path.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      throw fail(
        component === ""
          ? "the repository path has an empty component"
          : `bad repository path component "${clip(component)}": use lowercase letters, digits and single separators (. _ __ -)`,
      );
    }
  }
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_REPO_PREFIX + path;
  if (domain.length + 1 + path.length > MAX_NAME_LENGTH) {
    throw fail(`the repository name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;

  const ref: ImageRef = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The full normalised text: "docker.io/library/busybox:latest", "host/repo:tag@sha256:...". */
export function refString(ref: ImageRef): string {
  return `${repoName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/** "domain/path", e.g. "docker.io/library/busybox". */
export function repoName(ref: ImageRef): string {
  return `${ref.domain}/${ref.path}`;
}

/** "domain/path:tag" (a CRI repo tag), or undefined when the reference has no tag. */
export function repoTag(ref: ImageRef): string | undefined {
  return ref.tag !== undefined ? `${repoName(ref)}:${ref.tag}` : undefined;
}

/** "domain/path@digest" (a CRI repo digest) for the given manifest digest. */
export function repoDigest(ref: ImageRef, digest: string): string {
  return `${repoName(ref)}@${digest}`;
}

/** What to ask the registry for: the digest if the reference has one, else the tag. */
export function pullReference(ref: ImageRef): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** True when `text` is a valid, supported digest ("sha256:<64 hex>"). */
export function isDigest(text: string): boolean {
  try {
    parseDigest(text);
    return true;
  } catch {
    return false;
  }
}

/** True for an image ID rather than a reference: 64 hex digits, bare or with "sha256:". */
export function looksLikeImageId(text: string): boolean {
  return IMAGE_ID.test(text);
}

function clip(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}
