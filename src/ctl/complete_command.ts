// `crib ctl __complete container|pod|image`: the candidates a shell completion offers,
// one a line. Hidden; quiet by design: with no daemon it prints nothing and exits 0, so
// a completion never prints errors into the command line being typed.
import { UsageError } from "../cli/args.ts";
import type { CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";

async function candidates({ client, args }: CtlContext): Promise<string[]> {
  switch (args.positionals[0]) {
    case "container":
      return (await client.call("RuntimeService", "ListContainers", { filter: null })).containers.map((c) => c.id);
    case "pod":
      return (await client.call("RuntimeService", "ListPodSandbox", { filter: null })).items.map((p) => p.id);
    case "image":
      return (await client.call("ImageService", "ListImages", { filter: null })).images.flatMap((i) => [...i.repo_tags, i.id]);
    default:
      throw new UsageError("give container, pod or image");
  }
}

export const complete: CtlCommand = {
  name: "__complete",
  summary: "ids and names for shell completion (used by crib completion's scripts)",
  args: "container|pod|image",
  flags: [],
  examples: ["crib ctl __complete container"],
  hidden: true,
  async run(ctx) {
    const list = await candidates(ctx).catch((e: unknown) => {
      if (e instanceof UsageError) throw e;
      return [];
    });
    ctx.out(list.map((x) => `${x}\n`).join(""));
    return 0;
  },
};
