import { ModelState, type ModelInfo } from "../../gen/modelswap/v1/inference.js";
import type { ModelStatus, RunnerInfo, StatusResponse } from "../../gen/modelswap/v1/admin.js";
import type { MemoryLedger } from "./memory-ledger.js";
import type { ModelRecord, RunnerRecord } from "./records.js";

/** Placement's read side: what ListModels, GetStatus and `modelswap ps` show. Pure. */

export function describeModel(model: ModelRecord, replicas: readonly RunnerRecord[], queued: number): ModelInfo {
  const config = model.catalog.config;
  const state = replicas.some((runner) => runner.state === "ready")
    ? ModelState.MODEL_STATE_RESIDENT
    : replicas.some((runner) => runner.state === "loading")
      ? ModelState.MODEL_STATE_LOADING
      : replicas.some((runner) => runner.state === "unloading")
        ? ModelState.MODEL_STATE_UNLOADING
        : ModelState.MODEL_STATE_NOT_LOADED;
  return {
    name: config.name,
    aliases: config.aliases,
    tasks: config.tasks,
    state,
    fileBytes: model.catalog.fileBytes,
    estimatedBytes: model.estimatedBytes ?? 0,
    measuredBytes: model.measuredBytes ?? 0,
    contextSize: config.contextSize,
    pinned: model.pinned,
    inFlight: replicas.reduce((sum, runner) => sum + runner.leases.size, 0),
    queued,
    replicas: replicas.filter((runner) => runner.state === "ready").length,
  };
}

export function describeStatus(
  now: number,
  memory: MemoryLedger,
  policyName: string,
  models: ReadonlyMap<string, ModelRecord>,
  runners: ReadonlyMap<string, RunnerRecord>,
  queuedFor: (modelName: string) => number,
): StatusResponse {
  const allRunners = [...runners.values()];
  const modelStatuses: ModelStatus[] = [...models.values()].map((model) => {
    const name = model.catalog.config.name;
    const info = describeModel(model, allRunners.filter((runner) => runner.model === name), queuedFor(name));
    const ttl = model.catalog.config.ttlMs;
    const idleMs = model.lastUsedMs === 0 ? 0 : now - model.lastUsedMs;
    return {
      info,
      idleMs,
      ttlLeftMs: ttl === undefined || info.state !== ModelState.MODEL_STATE_RESIDENT || model.pinned ? -1 : Math.max(0, ttl - idleMs),
      loads: model.loads,
      evictions: model.evictions,
      lastLoadMs: model.reloadCostMs ?? 0,
    };
  });
  const runnerInfos: RunnerInfo[] = allRunners.map((runner) => ({
    id: runner.id,
    pid: runner.pid,
    model: runner.model ?? "",
    state: runner.state,
    rssBytes: runner.rssBytes,
    inFlight: runner.leases.size,
    address: runner.address,
  }));
  let residentBytes = 0;
  for (const runner of allRunners) if (runner.model && runner.state === "ready") residentBytes += memory.accountedBytes(models.get(runner.model)!);
  return { budgetBytes: memory.budgetBytes, residentBytes, evictionPolicy: policyName, models: modelStatuses, runners: runnerInfos };
}
