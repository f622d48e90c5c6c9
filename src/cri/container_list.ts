import type { CriContext } from "./context.ts";
import { toCriContainer } from "./container_convert.ts";
import { batches, labelsMatch } from "./filters.ts";
import { serverStream, unary } from "./rpc.ts";
import type { Container, ContainerFilter, ListContainersRequest, ListContainersResponse, Out, StreamContainersRequest, StreamContainersResponse } from "../protocol/types.ts";

function listContainers(d: CriContext, f: ContainerFilter | null): Out<Container>[] {
  return d.containers
    .list()
    .filter(
      (c) =>
        !f ||
        ((!f.id || c.id.startsWith(f.id)) &&
          (!f.pod_sandbox_id || c.podId.startsWith(f.pod_sandbox_id)) &&
          (!f.state || c.state === f.state.state) &&
          labelsMatch(c.config.labels, f.label_selector)),
    )
    .map((c) => toCriContainer(d, c));
}

export const containerList = unary<ListContainersRequest, ListContainersResponse>(async (d, req) => ({ containers: listContainers(d, req.filter) }));

export const containerStream = serverStream<StreamContainersRequest, StreamContainersResponse>(async (d, req, send) => {
  for (const batch of batches(listContainers(d, req.filter))) send({ containers: batch });
});
