import { formatBytes } from "../../common/format-bytes.js";
import type { BoxModel, BoxRecord } from "./box-record.js";

/**
 * Why a box was chosen, best first: the model is resident there, or being loaded (or its
 * file downloaded) there, or it fits in that box's free memory, or that box's eviction
 * policy frees room most cheaply, or only boxes that must download its file first can make
 * room (a download takes far longer than a reload), or no box can make room now and the
 * request queues where the queue is shortest.
 */
export type BoxReason = "resident" | "loading" | "free_memory" | "eviction_cost" | "download" | "queue";

export interface BoxChoice {
  box: BoxRecord;
  /** The model's catalog name on that box (the request may have named an alias). */
  model: string;
  reason: BoxReason;
  /** For people and traces: "resident, 2 in flight", "fits: 310 MiB free after", ... */
  detail: string;
  /** Boxes that could serve the model (its catalog has it, not excluded). */
  candidates: number;
}

/** Reasons that mean the chosen box must load the model: one gateway claims that load. */
export const LOADING_REASONS: ReadonlySet<BoxReason> = new Set(["free_memory", "eviction_cost", "download", "queue"]);

interface Scored {
  box: BoxRecord;
  model: string;
  reason: BoxReason;
  /** Lower is better within a reason. */
  score: number;
  detail: string;
}

/** Scores of "fits" are minus the bytes left free; an eviction's score sorts after all of them. */
const AFTER_EVERY_FIT = 2 ** 52;

const TIER: Record<BoxReason, number> = { resident: 0, loading: 1, free_memory: 2, eviction_cost: 3, download: 4, queue: 5 };

/**
 * Routing across boxes, filter -> score -> pick. Pure. `model` is a name or an alias;
 * `exclude` holds boxes that already failed this request. Undefined when no box has the
 * model in its catalog.
 */
export function pickBox(model: string, boxes: readonly BoxRecord[], exclude: ReadonlySet<string> = new Set()): BoxChoice | undefined {
  const candidates = filterBoxes(model, boxes, exclude);
  const scored = candidates.map(({ box, entry }) => scoreBox(box, entry));
  const best = pick(scored);
  return best && { box: best.box, model: best.model, reason: best.reason, detail: best.detail, candidates: candidates.length };
}

/** Boxes not excluded whose catalog has the model (by name or alias). */
export function filterBoxes(model: string, boxes: readonly BoxRecord[], exclude: ReadonlySet<string>): { box: BoxRecord; entry: BoxModel }[] {
  const found: { box: BoxRecord; entry: BoxModel }[] = [];
  for (const box of boxes) {
    if (exclude.has(box.box)) continue;
    const entry = box.models.find((candidate) => candidate.name === model || candidate.aliases.includes(model));
    if (entry) found.push({ box, entry });
  }
  return found;
}

/** Where the model stands on one box, as a reason and a score (lower is better). */
function scoreBox(box: BoxRecord, entry: BoxModel): Scored {
  const load = box.inFlight + box.queueDepth;
  const model = entry.name;
  if (entry.state === "resident") return { box, model, reason: "resident", score: load, detail: `resident, ${box.inFlight} in flight, ${box.queueDepth} queued` };
  if (entry.state === "loading") return { box, model, reason: "loading", score: load, detail: entry.file === "downloading" ? `already downloading ${entry.name}` : `already loading ${entry.name}` };
  const cost = entry.load ?? { kind: "blocked", reason: "no load cost published" };
  if (entry.file === "missing" && cost.kind !== "blocked") {
    // Among boxes that must download first: where it fits (most room after), then the cheapest eviction.
    return cost.kind === "fits"
      ? { box, model, reason: "download", score: -cost.freeAfterBytes, detail: `downloads ${model} first, then fits: ${formatBytes(cost.freeAfterBytes)} free after` }
      : { box, model, reason: "download", score: AFTER_EVERY_FIT + cost.reloadCostMs, detail: `downloads ${model} first, then ${box.policy} evicts ${cost.victims.join(", ")}` };
  }
  switch (cost.kind) {
    case "fits":
      // Free memory first: the box with the most left after the load.
      return { box, model, reason: "free_memory", score: -cost.freeAfterBytes, detail: `fits: ${formatBytes(cost.freeAfterBytes)} free after loading ${formatBytes(entry.bytes)}` };
    case "evict":
      return { box, model, reason: "eviction_cost", score: cost.reloadCostMs, detail: `${box.policy} evicts ${cost.victims.join(", ")} (reload cost ${Math.round(cost.reloadCostMs)} ms)` };
    case "blocked":
      return { box, model, reason: "queue", score: box.queueDepth, detail: `no room now (${cost.reason}); queues behind ${box.queueDepth}` };
  }
}

/** The best reason wins, then the lowest score, then the box name (stable across gateways). */
export function pick(scored: readonly Scored[]): Scored | undefined {
  let best: Scored | undefined;
  for (const entry of scored) {
    if (
      best === undefined ||
      TIER[entry.reason] < TIER[best.reason] ||
      (TIER[entry.reason] === TIER[best.reason] && (entry.score < best.score || (entry.score === best.score && entry.box.box < best.box.box)))
    ) {
      best = entry;
    }
  }
  return best;
}
