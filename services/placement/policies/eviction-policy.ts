// The one interface every residency policy implements. Policies are pure: they read
// a snapshot and their own immutable state and return a decision or a new state;
// placement applies decisions and feeds the events back in.

export interface ResidentModel {
  name: string;
  /** Measured resident bytes once the runner reported them, else the estimate (host memory, under `budget`). */
  bytes: number;
  /**
   * Of the model's memory, what it holds on a discrete GPU, under `gpu_budget` (measured, else
   * estimated); 0 or absent when GPU memory is not budgeted. Not part of `bytes`.
   */
  gpuBytes?: number;
  /** Pinned models are never evicted. */
  pinned: boolean;
  /** Streams in flight; > 0 => never evicted. */
  leases: number;
  loadedAtMs: number;
  lastUsedMs: number;
  /** Accesses since the model became resident (reset when it is evicted). */
  useCount: number;
  /** Measured time to load it again (estimated before the first load). */
  reloadCostMs: number;
  /**
   * Higher = keep longer; 0 is neutral. `lru` uses it only to break ties in recency;
   * `cost` multiplies a model's value by 2^priority (clamped to ±10).
   */
  priority: number;
}

/** Bytes the models hold together: host bytes, or what they hold on a discrete GPU. */
export function totalBytes(models: readonly ResidentModel[], field: "bytes" | "gpuBytes" = "bytes"): number {
  let total = 0;
  for (const model of models) total += model[field] ?? 0;
  return total;
}

export interface EvictionRequest {
  /** Bytes the incoming model needs. */
  needBytes: number;
  budgetBytes: number;
  /**
   * The second dimension, on a discrete GPU with `gpu_budget`: GPU bytes the incoming model
   * needs and the GPU budget they must fit in with the residents' gpuBytes. Absent: GPU
   * memory is not budgeted and only `bytes` count.
   */
  needGpuBytes?: number;
  gpuBudgetBytes?: number;
  resident: readonly ResidentModel[];
  nowMs: number;
  /** Models resident for less than this are not candidates. */
  minResidencyMs: number;
}

export type EvictionDecision =
  | { kind: "fits" }
  | { kind: "evict"; victims: string[]; freedBytes: number }
  | { kind: "blocked"; reason: string; reclaimableBytes: number };

/** What a policy learns about a model when it is used (priority: see ResidentModel). */
export interface AccessedModel {
  name: string;
  bytes: number;
  /** GPU bytes under `gpu_budget` (see ResidentModel.gpuBytes). */
  gpuBytes?: number;
  reloadCostMs: number;
  priority?: number;
}

export interface EvictionPolicy<State> {
  readonly name: string;
  initialState(): State;
  /** Called on every use of a resident model, including right after it was loaded. */
  onAccess(state: State, model: AccessedModel, nowMs: number): State;
  /** Called after placement has evicted the victims of a decision. */
  onEvict(state: State, victims: readonly string[]): State;
  decide(state: State, request: EvictionRequest): EvictionDecision;
}
