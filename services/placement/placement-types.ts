import type { ModelswapError } from "../../common/errors.js";
import type { ModelConfig } from "../../common/config/config-types.js";
import type { ResidencyEvent } from "../../gen/modelswap/v1/admin.js";
import type { Lease } from "../../gen/modelswap/v1/placement.js";
import type { RunnerCommand } from "../../gen/modelswap/v1/runner.js";

export interface Clock {
  now(): number;
}

/** Everything the placement core does to the world goes through these effects. */
export interface PlacementEffects {
  spawnRunner(runnerId: string): void;
  sendToRunner(runnerId: string, command: RunnerCommand): void;
  /** Ends a runner process that did not free its memory or stopped answering. */
  killRunner(runnerId: string): void;
  grant(waiterId: string, lease: Lease): void;
  /** An admin LoadModel request completed. */
  loadDone(waiterId: string, model: string, loadMs: number): void;
  notifyQueued(waiterId: string, model: string, position: number): void;
  notifyLoading(waiterId: string, model: string, progress: number): void;
  reject(waiterId: string, error: ModelswapError): void;
  publish(event: ResidencyEvent): void;
  /** Reads a model file into page cache ahead of its load. */
  prefetch(path: string): void;
  /** Persists what was learned about a model (measured bytes, load time). */
  learned(model: string, facts: LearnedFacts): void;
}

export interface LearnedFacts {
  measuredBytes?: number;
  estimatedBytes?: number;
  loadMs?: number;
  /** The file the facts were learned from: size and mtime, so a changed file invalidates them. */
  fileBytes: number;
  fileMtimeMs: number;
}

export interface PlacementSettings {
  budgetBytes: number;
  policyName: "lru" | "cost";
  spareRunners: number;
  queueMax: number;
  queueTimeoutMs: number;
  minResidencyMs: number;
  fairnessMs: number;
  prefetch: boolean;
  /** RSS of a runner with no model, until a runner reports its own. */
  runnerBaseBytesGuess: number;
  /** After this many consecutive failed loads of a model, its waiters get UNAVAILABLE. */
  maxLoadAttempts: number;
}

export interface CatalogModel {
  config: ModelConfig;
  fileBytes: number;
  fileMtimeMs: number;
  learned?: LearnedFacts;
}

export type RunnerState = "starting" | "spare" | "loading" | "ready" | "unloading" | "stopping";

export type WaiterKind = "lease" | "load";
