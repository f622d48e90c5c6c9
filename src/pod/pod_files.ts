// The files a pod's containers see as /etc/hostname, /etc/hosts and
// /etc/resolv.conf, written under the pod's state dir and bind-mounted.
import { readFile, writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { DNSConfig } from "../protocol/types.ts";
import { invalidArgument } from "../errors.ts";

/** Bounded, as resolvers are: glibc reads at most 3 servers and 6 search domains (newer: 32). */
const MAX_SERVERS = 3;
const MAX_SEARCHES = 32;

export function resolvConf(dns: DNSConfig): string {
  if (dns.servers.length > MAX_SERVERS) throw invalidArgument(`dns_config.servers has ${dns.servers.length} entries; at most ${MAX_SERVERS} are used by resolvers`);
  if (dns.searches.length > MAX_SEARCHES) throw invalidArgument(`dns_config.searches has ${dns.searches.length} entries; at most ${MAX_SEARCHES}`);
  for (const v of [...dns.servers, ...dns.searches, ...dns.options]) {
    if (v === "" || /[\s#;]/.test(v)) throw invalidArgument(`dns_config value ${JSON.stringify(v)} is empty or contains whitespace or a comment character`);
  }
  const lines: string[] = [];
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(" ")}`);
  for (const s of dns.servers) lines.push(`nameserver ${s}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(" ")}`);
  return lines.join("\n") + "\n";
}

export function hostsFile(hostname: string): string {
  return [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "fe00::0\tip6-mcastprefix",
    "fe00::1\tip6-allnodes",
    "fe00::2\tip6-allrouters",
    ...(hostname ? [`127.0.1.1\t${hostname}`] : []),
    "",
  ].join("\n");
}

async function atomicWrite(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode: 0o644 });
  await rename(`${path}.tmp`, path);
}

export interface PodFiles { hostname: string; hosts: string; resolvConf: string }

/**
 * Write the pod's files into `dir`. Without a DNS config (host network pods,
 * or a kubelet that sends none) the host's resolv.conf is used, as the
 * kubelet's "Default" DNS policy means.
 */
export async function writePodFiles(dir: string, hostname: string, dns: DNSConfig | null): Promise<PodFiles> {
  const files: PodFiles = { hostname: join(dir, "hostname"), hosts: join(dir, "hosts"), resolvConf: join(dir, "resolv.conf") };
  const hasDns = dns !== null && dns.servers.length + dns.searches.length + dns.options.length > 0;
  const resolv = hasDns ? resolvConf(dns) : await readFile("/etc/resolv.conf", "utf8").catch(() => "");
  await Promise.all([
    atomicWrite(files.hostname, `${hostname}\n`),
    atomicWrite(files.hosts, hostsFile(hostname)),
    atomicWrite(files.resolvConf, resolv),
  ]);
  return files;
}
