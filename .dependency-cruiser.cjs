// The import rules of src/, checked by test/unit/layers.test.ts (so by `npm test` and CI).
// LAYERS is the layer list of docs/architecture.md, top to bottom: a folder imports its
// own files and folders on lower lines, never a line above it nor a neighbour on its
// own line. Change the two together.
// By hand: bun node_modules/dependency-cruiser/bin/dependency-cruiser.mjs src

/** Top to bottom. A name ending in .ts is a file at the top of src/. */
const LAYERS = [
  ["faces"],
  ["help"],
  ["ctl"],
  ["cli"],
  ["daemon"],
  ["cri"],
  ["stream"],
  ["stats"],
  ["container"],
  ["pod", "image"],
  ["storage", "state", "events", "monitor"],
  ["grpc"],
  ["config", "metrics", "protocol", "h2", "sys", "util", "types"],
  ["log", "errors.ts", "version.ts"],
];

/** The few imports that point up, each justified in docs/architecture.md. */
const UPWARD = [
  // The pod-removed event carries the removed record (the store no longer has it).
  { from: "src/events/bus.ts", to: "src/pod/pod_store.ts" },
];

/** What a resident process of the monitor or pause face must never load. */
const DAEMON_SIDE = [
  "^src/(ctl|daemon|cri|grpc|h2|stream|stats|container|pod|image|storage|state|events|metrics|protocol|config)/",
  "^src/monitor/client\\.ts$",
  "^src/cli/(serve|print_config|install)\\.ts$",
  "^node_modules/",
];

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const pathOf = (name) => (name.endsWith(".ts") ? `^src/${esc(name)}$` : `^src/${esc(name)}/`);
const any = (names) => names.map(pathOf).join("|");

function layerRules() {
  const rules = [];
  LAYERS.forEach((line, i) => {
    const above = LAYERS.slice(0, i).flat();
    for (const name of line) {
      const forbidden = [...above, ...line.filter((n) => n !== name)];
      if (forbidden.length === 0) continue;
      const exceptions = UPWARD.filter((u) => new RegExp(pathOf(name)).test(u.from));
      const comment =
        `${name} is on line ${i + 1} of the layer list (docs/architecture.md): it may import only from lower lines` +
        (line.length > 1 ? `, not from ${line.filter((n) => n !== name).join(", ")} beside it` : "");
      rules.push({
        name: `layers/${name}`,
        comment,
        severity: "error",
        from: { path: pathOf(name), ...(exceptions.length ? { pathNot: exceptions.map((u) => `^${esc(u.from)}$`).join("|") } : {}) },
        to: { path: any(forbidden) },
      });
      for (const u of exceptions) {
        rules.push({
          name: `layers/${u.from.replace(/^src\//, "")}`,
          comment: `${comment}; this file's one allowed upward import is ${u.to}`,
          severity: "error",
          from: { path: `^${esc(u.from)}$` },
          to: { path: any(forbidden), pathNot: `^${esc(u.to)}$` },
        });
      }
    }
  });
  return rules;
}

module.exports = {
  forbidden: [
    ...layerRules(),
    {
      name: "layers/unknown-folder",
      comment: "every folder of src/ has a line in the layer list: add it to LAYERS here and to docs/architecture.md",
      severity: "error",
      from: { path: "^src/", pathNot: any(LAYERS.flat()) },
      to: {},
    },
    {
      name: "layers/unknown-folder",
      comment: "every folder of src/ has a line in the layer list: add it to LAYERS here and to docs/architecture.md",
      severity: "error",
      from: {},
      to: { path: "^src/", pathNot: any(LAYERS.flat()) },
    },
    {
      name: "services-know-no-edges",
      comment: "cri/ (gRPC) and stream/ (exec/attach/port-forward) are edges: the services below them never import them",
      severity: "error",
      from: { path: any(["stats", "container", "pod", "image", "storage", "state", "events", "monitor"]) },
      to: { path: any(["cri", "stream"]) },
    },
    {
      name: "monitor-loads-no-daemon-code",
      comment: "the monitor (one resident process per node, also the pause face) must not load daemon-side code or npm packages",
      severity: "error",
      from: { path: "^src/faces/(monitor|pause)\\.ts$" },
      to: { path: DAEMON_SIDE.join("|"), reachable: true },
    },
    {
      name: "monitor-imports-no-daemon-code",
      comment: "monitor/ holds the monitor process and what both sides share; only its client (monitor/client.ts) is daemon-side",
      severity: "error",
      from: { path: "^src/monitor/", pathNot: "^src/monitor/client\\.ts$" },
      to: { path: DAEMON_SIDE.join("|") },
    },
    {
      name: "no-circular",
      comment: "no import circles: split the shared part into its own file",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "not-to-unresolvable",
      comment: "an import the checker cannot resolve would hide its arrow from these rules",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // TypeScript 7 has no JS API yet; swc parses and keeps `import type` arrows.
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "^node_modules/" },
    moduleSystems: ["es6"],
  },
};
