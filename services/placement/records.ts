import type { CatalogModel, RunnerState, UnloadCause, WaiterKind } from "./placement-types.js";

/** Placement's mutable bookkeeping, owned by PlacementCore alone. */

export interface ModelRecord {
  /** Replaced when a download writes the model's file (its size and mtime change). */
  catalog: CatalogModel;
  file: ModelFile;
  pinned: boolean;
  /** Host and GPU memory together, estimated from the GGUF header before the first load. */
  estimatedBytes: number | undefined;
  /** Host and GPU memory together, as the last load measured it. */
  measuredBytes: number | undefined;
  /** Of estimatedBytes, the GPU's part (VRAM on a discrete GPU; 0 without GPU layers). */
  estimatedGpuBytes: number | undefined;
  /** Of measuredBytes, the GPU's part; set with measuredBytes. */
  measuredGpuBytes: number | undefined;
  /** Last measured load time: the reload cost the `cost` policy weighs. */
  reloadCostMs: number | undefined;
  estimating: boolean;
  lastUsedMs: number;
  useCount: number;
  loads: number;
  evictions: number;
  consecutiveLoadFailures: number;
  /** Unload once its streams end (admin UnloadModel). */
  unloadRequested: boolean;
  prefetched: boolean;
}

/**
 * Whether the model's file is there to load: on disk (or not ours to fetch: a load then
 * reports it missing), missing with a source to fetch it from, or being fetched.
 */
export type ModelFile = { state: "present" } | { state: "missing" } | { state: "downloading"; bytes: number; totalBytes: number; startedMs: number };

/** Why a hosted model is leaving its runner, for events, traces and metrics. */
export interface UnloadReason {
  cause: UnloadCause;
  /** For `evicted`: the policy that chose it and the model it made room for. */
  policy?: string;
  forModel?: string;
  /** For `over_budget`: by how much the committed bytes exceeded the budget. */
  overBytes?: number;
  /** For `over_budget` on a discrete GPU: by how much the GPU bytes exceeded gpu_budget. */
  overGpuBytes?: number;
}

/** One model inside one runner: a replica. */
export interface HostedModel {
  readonly model: string;
  state: "loading" | "ready" | "unloading";
  /** Every lease on it, streaming or parked: a model with leases is not unloaded. */
  readonly leases: Set<string>;
  /** Leases the caller holds between streams (held leases), with when each was parked. A subset of `leases`. */
  readonly parked: Map<string, number>;
  /** Leases placement asked back (revoke) whose release has not arrived yet. A subset of `leases`. */
  readonly revoking: Set<string>;
  loadStartedMs: number;
  unload: UnloadReason | undefined;
  /** Where it runs and how many layers are on the GPU, once loaded (empty / 0 before). */
  backend: string;
  gpuLayers: number;
}

export interface RunnerRecord {
  readonly id: string;
  state: RunnerState;
  pid: number;
  address: string;
  /** The models this runner holds or is loading or unloading. */
  readonly hosted: Map<string, HostedModel>;
  /** Set while it hosts a model marked `isolation: process`: no other model joins it. */
  isolatedFor: string | undefined;
  rssBytes: number;
  /** The runner's own memory (RSS with no model): at registration, then RSS minus its models after each unload. */
  baseBytes: number;
  /** RSS with no model at registration; memory kept above it is retained heap. */
  initialBaseBytes: number;
  /** It has connected its control stream (after its spawn, or adopted after a placement restart). */
  registered: boolean;
}

export interface WaiterRecord {
  readonly id: string;
  readonly kind: WaiterKind;
  readonly model: string;
  readonly enqueuedMs: number;
  readonly deadlineMs: number;
  readonly excludeRunners: ReadonlySet<string>;
  lastPosition: number;
  /** When it started waiting on a load of its model (for queue vs load timings). */
  loadStartedMs: number | undefined;
}

export interface LeaseRecord {
  readonly id: string;
  readonly model: string;
  readonly runnerId: string;
}

/** Bytes a model takes when resident: measured once known, else estimated. */
export function footprint(model: ModelRecord): number | undefined {
  return model.measuredBytes ?? model.estimatedBytes;
}

/** When an unpinned model with a `ttl` is due to be unloaded for idling; undefined when it never is. */
export function idleExpiresAtMs(model: ModelRecord): number | undefined {
  const ttl = model.catalog.config.ttlMs;
  return model.pinned || ttl === undefined ? undefined : model.lastUsedMs + ttl;
}

/** Leases with a stream on them now (not parked). */
export function streamingLeases(hosted: HostedModel): number {
  return hosted.leases.size - hosted.parked.size;
}

/**
 * Of footprint(), what the model holds on the GPU: from the same figure as footprint (the
 * measurement once there is one, else the estimate), 0 when that figure has no GPU part.
 * Never more than the footprint.
 */
export function gpuFootprint(model: ModelRecord): number {
  const [total, gpu] = model.measuredBytes !== undefined ? [model.measuredBytes, model.measuredGpuBytes] : [model.estimatedBytes, model.estimatedGpuBytes];
  return Math.min(total ?? 0, gpu ?? 0);
}

/** Leases on a runner over all its models, parked ones included (a runner with any is not recycled). */
export function runnerLeases(runner: RunnerRecord): number {
  let total = 0;
  for (const hosted of runner.hosted.values()) total += hosted.leases.size;
  return total;
}
