import { describe, expect, test } from "bun:test";
import type { PodSandboxConfig } from "../../src/protocol/types.ts";
import { CribError } from "../../src/errors.ts";
import { bandwidthBits, capabilityArgs, cniArgs, formatCniArgs, parseQuantity, pluginEnv, pluginStdin, runtimeConfigFor } from "../../src/pod/cni/args.ts";
import { networkFromObject } from "../../src/pod/cni/config.ts";

function pod(extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig {
  return {
    metadata: { name: "web", namespace: "prod", uid: "0f1e-uid", attempt: 0 },
    hostname: "web",
    log_directory: "",
    dns_config: null,
    port_mappings: [],
    labels: {},
    annotations: {},
    linux: null,
    windows: null,
    ...extra,
  };
}

const list = networkFromObject({
  cniVersion: "1.0.0",
  name: "crib",
  plugins: [
    { type: "bridge", bridge: "cni0", ipam: { type: "host-local" } },
    { type: "portmap", capabilities: { portMappings: true } },
    { type: "bandwidth", capabilities: { bandwidth: true }, runtimeConfig: { keep: 1 } },
    { type: "dnsish", capabilities: { dns: true, somethingElse: true } },
  ],
});

describe("CNI plugin arguments", () => {
  test("CNI_ARGS: IgnoreUnknown and the pod's Kubernetes identity", () => {
    const args = cniArgs("abc123", pod());
    expect(formatCniArgs(args)).toBe("IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0f1e-uid");
    expect(() => cniArgs("x", pod({ metadata: { name: "a;b", namespace: "n", uid: "u", attempt: 0 } }))).toThrow(CribError);
  });

  test("environment: CNI_* set, stray CNI_* from our own env dropped, PATH kept", () => {
    const env = pluginEnv({ PATH: "/usr/bin", CNI_COMMAND: "VERSION", CNI_NETNS: "/stale", HOME: undefined }, {
      command: "ADD", containerId: "abc", netns: "/run/p/ns/net", ifName: "eth0", args: [["IgnoreUnknown", "1"]], binDirs: ["/opt/cni/bin", "/usr/lib/cni"],
    });
    expect(env).toEqual({
      PATH: "/usr/bin", CNI_COMMAND: "ADD", CNI_CONTAINERID: "abc", CNI_NETNS: "/run/p/ns/net", CNI_IFNAME: "eth0",
      CNI_ARGS: "IgnoreUnknown=1", CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
    });
  });

  test("port mappings: hostPorts only, protocol lowercase, hostIP when set", () => {
    const caps = capabilityArgs(pod({
      port_mappings: [
        { protocol: 0, container_port: 80, host_port: 8080, host_ip: "" },
        { protocol: 1, container_port: 53, host_port: 5353, host_ip: "127.0.0.1" },
        { protocol: 2, container_port: 9, host_port: 9999, host_ip: "" },
        { protocol: 0, container_port: 443, host_port: 0, host_ip: "" },
      ],
    }));
    expect(caps.portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1" },
      { hostPort: 9999, containerPort: 9, protocol: "sctp" },
    ]);
    expect(caps.bandwidth).toBeUndefined();
    expect(caps.dns).toBeUndefined();
    expect(() => capabilityArgs(pod({ port_mappings: [{ protocol: 0, container_port: 0, host_port: 80, host_ip: "" }] }))).toThrow(/ports must be within/);
  });

  test("bandwidth from the kubelet's annotations, in bits per second", () => {
    const caps = capabilityArgs(pod({ annotations: { "kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "1Gi" } }));
    expect(caps.bandwidth).toEqual({ ingressRate: 10_000_000, ingressBurst: 2147483647, egressRate: 2 ** 30, egressBurst: 2147483647 });
    const onlyEgress = capabilityArgs(pod({ annotations: { "kubernetes.io/egress-bandwidth": "500k" } }));
    expect(onlyEgress.bandwidth).toEqual({ egressRate: 500_000, egressBurst: 2147483647 });
    expect(() => capabilityArgs(pod({ annotations: { "kubernetes.io/ingress-bandwidth": "fast" } }))).toThrow(/not a quantity/);
    expect(() => capabilityArgs(pod({ annotations: { "kubernetes.io/ingress-bandwidth": "10" } }))).toThrow(/outside 1k..1P/);
    expect(() => bandwidthBits("2P", "x")).toThrow(/outside/);
  });

  test("quantities", () => {
    expect(parseQuantity("1k")).toBe(1000);
    expect(parseQuantity("1Ki")).toBe(1024);
    expect(parseQuantity("1.5M")).toBe(1_500_000);
    expect(parseQuantity("1e6")).toBe(1_000_000);
    expect(parseQuantity("2E")).toBe(2e18);
    expect(parseQuantity("100")).toBe(100);
    expect(parseQuantity("10 M")).toBeUndefined();
    expect(parseQuantity("-1M")).toBeUndefined();
    expect(parseQuantity("1m")).toBeUndefined(); // milli makes no sense for a rate the kernel takes in bits
  });

  test("DNS capability from the pod's DNS config", () => {
    const caps = capabilityArgs(pod({ dns_config: { servers: ["10.96.0.10"], searches: ["prod.svc.cluster.local"], options: ["ndots:5"] } }));
    expect(caps.dns).toEqual({ servers: ["10.96.0.10"], searches: ["prod.svc.cluster.local"], options: ["ndots:5"] });
  });

  test("runtimeConfig carries only the capabilities a plugin declares", () => {
    const caps = capabilityArgs(pod({
      port_mappings: [{ protocol: 0, container_port: 80, host_port: 8080, host_ip: "" }],
      annotations: { "kubernetes.io/ingress-bandwidth": "1M" },
    }));
    expect(runtimeConfigFor(list.plugins[0]!, caps)).toBeUndefined();
    expect(runtimeConfigFor(list.plugins[1]!, caps)).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] });
    expect(runtimeConfigFor(list.plugins[2]!, caps)).toEqual({ bandwidth: { ingressRate: 1_000_000, ingressBurst: 2147483647 } });
    expect(runtimeConfigFor(list.plugins[3]!, caps)).toBeUndefined(); // no DNS config, unknown capability ignored
    // An empty port list is still passed to a plugin that asks for it.
    expect(runtimeConfigFor(list.plugins[1]!, capabilityArgs(pod()))).toEqual({ portMappings: [] });
  });

  test("stdin: the list's name and version, runtimeConfig merged, prevResult", () => {
    const caps = capabilityArgs(pod({ annotations: { "kubernetes.io/egress-bandwidth": "1M" } }));
    const prev = { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] };
    const first = JSON.parse(pluginStdin(list, list.plugins[0]!, caps)) as Record<string, unknown>;
    expect(first).toEqual({ type: "bridge", bridge: "cni0", ipam: { type: "host-local" }, cniVersion: "1.0.0", name: "crib" });
    const bw = JSON.parse(pluginStdin(list, list.plugins[2]!, caps, prev)) as Record<string, unknown>;
    expect(bw.runtimeConfig).toEqual({ keep: 1, bandwidth: { egressRate: 1_000_000, egressBurst: 2147483647 } });
    expect(bw.prevResult).toEqual(prev);
    expect(bw.name).toBe("crib");
  });
});
