import type { CatalogModel, RunnerState, WaiterKind } from "./placement-types.js";

/** Placement's mutable bookkeeping, owned by PlacementCore alone. */

export interface ModelRecord {
  readonly catalog: CatalogModel;
  pinned: boolean;
  estimatedBytes: number | undefined;
  measuredBytes: number | undefined;
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

export interface RunnerRecord {
  readonly id: string;
  state: RunnerState;
  pid: number;
  address: string;
  model: string | undefined;
  leases: Set<string>;
  rssBytes: number;
  /** RSS with no model loaded: at registration, then as measured after each unload. */
  baseBytes: number;
  /** RSS with no model loaded at registration; an unload must get back near it. */
  initialBaseBytes: number;
  loadStartedMs: number;
  /** Why it is unloading: "evicted by lru for X", "idle ttl", "admin". */
  unloadReason: string;
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
