import { ModelState, type ModelInfo } from "../../gen/modelswap/v1/inference.js";
import type { ModelStatus, RunnerInfo, StatusResponse } from "../../gen/modelswap/v1/admin.js";
import type { MemoryLedger } from "./memory-ledger.js";
import { streamingLeases, type HostedModel, type ModelRecord, type RunnerRecord } from "./records.js";

/** Placement's read side: what ListModels, GetStatus and `modelswap ps` show. Pure. */

export function describeModel(model: ModelRecord, replicas: readonly HostedModel[], queued: number): ModelInfo {
  const config = model.catalog.config;
  const state = replicas.some((replica) => replica.state === "ready")
    ? ModelState.MODEL_STATE_RESIDENT
    : replicas.some((replica) => replica.state === "loading")
      ? ModelState.MODEL_STATE_LOADING
      : replicas.some((replica) => replica.state === "unloading")
        ? ModelState.MODEL_STATE_UNLOADING
        : model.file.state === "downloading"
          ? ModelState.MODEL_STATE_DOWNLOADING
          : model.file.state === "missing"
            ? ModelState.MODEL_STATE_NOT_DOWNLOADED
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
    inFlight: replicas.reduce((sum, replica) => sum + streamingLeases(replica), 0),
    queued,
    replicas: replicas.filter((replica) => replica.state === "ready").length,
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
    const replicas = allRunners.flatMap((runner) => (runner.hosted.has(name) ? [runner.hosted.get(name)!] : []));
    const info = describeModel(model, replicas, queuedFor(name));
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
  const runnerInfos: RunnerInfo[] = allRunners.map((runner) => {
    const hosted = [...runner.hosted.values()];
    return {
      id: runner.id,
      pid: runner.pid,
      model: hosted.map((entry) => entry.model).join(","),
      state: runner.state === "ready" && hosted.length === 0 ? "spare" : runner.state,
      rssBytes: runner.rssBytes,
      inFlight: hosted.reduce((sum, entry) => sum + streamingLeases(entry), 0),
      address: runner.address,
      models: hosted.map((entry) => ({
        name: entry.model,
        state: entry.state,
        inFlight: streamingLeases(entry),
        bytes: memory.modelBytes(entry.model),
        gpuBytes: memory.modelGpuBytes(entry.model),
        backend: entry.backend,
        gpuLayers: entry.gpuLayers,
      })),
      isolated: runner.isolatedFor !== undefined,
      baseBytes: runner.registered ? runner.baseBytes : memory.runnerBaseBytes(),
    };
  });
  let residentBytes = 0;
  let gpuResidentBytes = 0;
  for (const runner of allRunners) {
    for (const hosted of runner.hosted.values()) {
      if (hosted.state !== "ready") continue;
      residentBytes += memory.modelBytes(hosted.model);
      gpuResidentBytes += memory.modelGpuBytes(hosted.model);
    }
  }
  return {
    budgetBytes: memory.budgetBytes,
    residentBytes,
    // 0 = GPU memory not budgeted (no gpu_budget, or unified memory under budget_bytes).
    gpuBudgetBytes: memory.gpuBudgetBytes ?? 0,
    gpuResidentBytes,
    evictionPolicy: policyName,
    models: modelStatuses,
    runners: runnerInfos,
  };
}
