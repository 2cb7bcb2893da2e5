import type { BoxRecord } from "../services/cluster/box-record.js";
import { parseBoxRecord } from "../services/cluster/box-record.js";
import { connectEtcd } from "../services/cluster/connect-etcd.js";
import { registryKeys } from "../services/cluster/registry-keys.js";
import { formatBytes, table } from "./format.js";

/** `modelswap ps --cluster`: every registered box and its models, read from the registry in etcd. */
export async function clusterPsCommand(etcdEndpoints: string[], prefix: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const etcd = await connectEtcd({ etcd: etcdEndpoints });
  try {
    let boxes: BoxRecord[];
    try {
      const response = await etcd.getAll().prefix(registryKeys.boxes(prefix)).exec();
      boxes = response.kvs.flatMap((kv) => parseBoxRecord(kv.value.toString("utf8")) ?? []).sort((a, b) => a.box.localeCompare(b.box));
    } catch (error) {
      err.write(`error: cannot read the registry from etcd at ${etcdEndpoints.join(", ")}: ${(error as Error).message}; start etcd or pass --etcd URL\n`);
      return 1;
    }
    if (boxes.length === 0) {
      out.write(`no boxes registered under ${registryKeys.boxes(prefix)} in etcd at ${etcdEndpoints.join(", ")}\n`);
      return 0;
    }
    out.write(formatCluster(boxes) + "\n");
    return 0;
  } finally {
    etcd.close();
  }
}

/** The boxes, then where each model lives. Pure: tests read its output. */
function formatCluster(boxes: readonly BoxRecord[]): string {
  const names = (box: BoxRecord, state: "resident" | "loading") => box.models.filter((model) => model.state === state).map((model) => model.name).join(", ") || "-";
  const boxTable = table(
    ["BOX", "ADDRESS", "BUDGET", "FREE", "IN-FLIGHT", "QUEUED", "POLICY", "RESIDENT", "LOADING"],
    boxes.map((box) => [
      box.box,
      box.address,
      formatBytes(box.budgetBytes),
      formatBytes(Math.max(0, box.freeBytes)),
      String(box.inFlight),
      String(box.queueDepth),
      box.policy,
      names(box, "resident"),
      names(box, "loading"),
    ]),
  );
  const models = [...new Set(boxes.flatMap((box) => box.models.map((model) => model.name)))].sort();
  const where = (model: string) =>
    boxes.flatMap((box) => {
      const entry = box.models.find((candidate) => candidate.name === model);
      if (!entry || entry.state === "cold") return [];
      return [entry.state === "loading" ? `${box.box} (loading)` : box.box];
    });
  const modelTable = table(
    ["MODEL", "ON BOXES", "IN-FLIGHT", "QUEUED"],
    models.map((model) => {
      const entries = boxes.flatMap((box) => box.models.filter((candidate) => candidate.name === model));
      return [model, where(model).join(", ") || "-", String(entries.reduce((sum, entry) => sum + entry.inFlight, 0)), String(entries.reduce((sum, entry) => sum + entry.queued, 0))];
    }),
  );
  return `${boxTable}\n\n${modelTable}`;
}
