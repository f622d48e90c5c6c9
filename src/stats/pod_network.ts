// A pod's network counters, read from /proc/net/dev as its network namespace
// sees it. The JS thread joins the pod's pinned netns, reads the file and joins
// its own again, all synchronously, so no other JS runs in the pod's namespace
// (as src/pod/namespaces.ts does when it creates one). Works for pods with no
// running process too (crib pins namespaces to files, there is no pause process).
//
// Loopback is left out, as cAdvisor and containerd do: traffic a pod sends to
// itself never leaves it, and counting it would count it twice (rx and tx).
import { closeSync, constants, openSync, readFileSync } from "node:fs";
import { CLONE_NEWNET, setns } from "../sys/namespace.ts";
import { parseNetDev, type NetDevCounters } from "./cgroup_files.ts";

export interface PodNetworkSample {
  /** Interfaces other than lo, in /proc/net/dev order. */
  interfaces: NetDevCounters[];
  /** eth0 (what CNI plugins name the pod's interface) or else the first one. */
  defaultInterface?: NetDevCounters;
}

/** Read /proc/net/dev inside the netns pinned at `netnsPath`. Throws if it cannot enter it. */
export function readNetDevIn(netnsPath: string): string {
  const own = openSync("/proc/thread-self/ns/net", constants.O_RDONLY);
  try {
    const target = openSync(netnsPath, constants.O_RDONLY);
    try {
      setns(target, CLONE_NEWNET);
    } finally {
      closeSync(target);
    }
    try {
      return readFileSync("/proc/thread-self/net/dev", "utf8");
    } finally {
      setns(own, CLONE_NEWNET);
    }
  } finally {
    closeSync(own);
  }
}

export function podNetworkFrom(netDev: string): PodNetworkSample {
  const interfaces = parseNetDev(netDev).filter((i) => i.name !== "lo");
  return { interfaces, defaultInterface: interfaces.find((i) => i.name === "eth0") ?? interfaces[0] };
}
