// The layer list of docs/architecture.md, enforced: dependency-cruiser checks every
// import of src/ against the rules in .dependency-cruiser.cjs (layer order, no circles,
// services never importing cri/ or stream/, the monitor loading no daemon code).
import { expect, test } from "bun:test";
import { join } from "node:path";
import { cruise, type ICruiseResult, type IFlattenedRuleSet } from "dependency-cruiser";

const top = join(import.meta.dir, "../..");

interface RuleConfig {
  forbidden: { name: string; comment: string }[];
  options: Record<string, unknown>;
}

test("every import in src/ follows the layer rules", async () => {
  const config = (await import(join(top, ".dependency-cruiser.cjs"))).default as RuleConfig;
  const previous = process.cwd();
  process.chdir(top); // dependency-cruiser resolves and reports paths relative to the cwd
  let result: ICruiseResult;
  try {
    const reported = await cruise(["src"], {
      ...config.options,
      validate: true,
      ruleSet: { forbidden: config.forbidden } as IFlattenedRuleSet,
    });
    result = reported.output as ICruiseResult;
  } finally {
    process.chdir(previous);
  }
  const comments = new Map(config.forbidden.map((r) => [r.name, r.comment]));
  const broken = result.summary.violations.map((v) => {
    const via = v.cycle?.length ? ` (circle: ${v.cycle.map((c) => c.name).join(" -> ")})` : v.via?.length ? ` (via ${v.via.map((c) => c.name).join(" -> ")})` : "";
    return `${v.from} -> ${v.to}${via}\n  breaks ${v.rule.name}: ${comments.get(v.rule.name) ?? ""}`;
  });
  expect(broken.join("\n")).toBe("");
  // A parse that silently found nothing would pass the rules: make sure it saw the code.
  expect(result.summary.totalCruised).toBeGreaterThan(150);
});
