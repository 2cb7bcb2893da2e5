import type { PlacementView } from "../placement/placement-actions.js";
import { evictionRequest, replicasOf, residentModels } from "../placement/placement-plan.js";
import { footprint, type ModelRecord } from "../placement/records.js";
import type { BoxModel, BoxRecord, LoadCost } from "./box-record.js";

export interface BoxIdentity {
  box: string;
  address: string;
  leaseId: string;
}

/**
 * The registry record of one box, read from placement's state. Pure: the same view gives
 * the same record (but `updatedMs`), so a caller can skip publishing when nothing changed.
 */
export function describeBox(view: PlacementView, identity: BoxIdentity): BoxRecord {
  const freeBytes = view.memory.freeBytes();
  const models: BoxModel[] = [];
  let inFlight = 0;
  for (const model of view.models.values()) {
    const config = model.catalog.config;
    const replicas = replicasOf(view, config.name).filter((replica) => replica.hosted.state !== "unloading" && replica.runner.state !== "stopping");
    const leases = replicas.reduce((sum, replica) => sum + replica.hosted.leases.size, 0);
    inFlight += leases;
    // A download is the first part of a load: peers join it rather than start another elsewhere.
    const downloading = model.file.state === "downloading";
    const state = replicas.some((replica) => replica.hosted.state === "ready") ? "resident" : replicas.length > 0 || downloading ? "loading" : "cold";
    const entry: BoxModel = {
      name: config.name,
      aliases: config.aliases,
      state,
      bytes: replicaBytes(view, model),
      inFlight: leases,
      queued: view.queue.countOf(config.name),
    };
    if (state === "cold") entry.load = loadCost(view, model, freeBytes);
    if (downloading) entry.file = "downloading";
    else if (model.file.state === "missing" && config.source) entry.file = "missing";
    models.push(entry);
  }
  return {
    box: identity.box,
    address: identity.address,
    budgetBytes: view.settings.budgetBytes,
    freeBytes,
    queueDepth: view.queue.length,
    inFlight,
    policy: view.policy.name,
    leaseId: identity.leaseId,
    updatedMs: view.nowMs,
    models,
  };
}

/** Whether a record says something new (its time aside): the registrar publishes only then. */
export function sameRecord(a: BoxRecord | undefined, b: BoxRecord): boolean {
  return a !== undefined && JSON.stringify({ ...a, updatedMs: 0 }) === JSON.stringify({ ...b, updatedMs: 0 });
}

/** A model never estimated yet counts its file size: the cheapest honest guess a peer can compare. */
function replicaBytes(view: PlacementView, model: ModelRecord): number {
  return footprint(model) === undefined ? model.catalog.fileBytes : view.memory.accountedBytes(model);
}

/**
 * What loading `model` here costs, asked of this box's own eviction policy with the
 * figures it would use: fits in free memory, else the victims it would evict (their
 * reload time is the cost), else blocked.
 */
function loadCost(view: PlacementView, model: ModelRecord, freeBytes: number): LoadCost {
  const need = replicaBytes(view, model);
  const needGpu = view.memory.accountedGpuBytes(model);
  if (need <= freeBytes && needGpu <= view.memory.freeGpuBytes()) return { kind: "fits", freeAfterBytes: freeBytes - need };
  const resident = residentModels(view, true);
  const decision = view.policy.decide(view.policyState, evictionRequest(view, resident, need, needGpu, view.settings.minResidencyMs));
  if (decision.kind === "fits") return { kind: "fits", freeAfterBytes: 0 };
  if (decision.kind === "blocked") return { kind: "blocked", reason: decision.reason };
  const reloadCostMs = resident.filter((entry) => decision.victims.includes(entry.name)).reduce((sum, entry) => sum + entry.reloadCostMs, 0);
  return { kind: "evict", victims: decision.victims, reloadCostMs };
}
