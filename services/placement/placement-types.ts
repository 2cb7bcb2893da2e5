import type { ModelswapError } from "../../common/errors.js";
import type { ModelConfig } from "../../common/config/config-types.js";
import type { Lease } from "../../gen/modelswap/v1/placement.js";
import type { RunnerCommand } from "../../gen/modelswap/v1/runner.js";
import type { UnloadReason } from "./records.js";

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
  /** Asks the holder of a (held) lease to release it. */
  revokeLease(leaseId: string): void;
  /** An admin LoadModel request completed. */
  loadDone(waiterId: string, model: string, loadMs: number): void;
  notifyQueued(waiterId: string, model: string, position: number): void;
  notifyLoading(waiterId: string, model: string, progress: number): void;
  reject(waiterId: string, error: ModelswapError): void;
  /** A residency change happened (typed: tracing, metrics, logs and `watch` read the same events). */
  publish(event: ResidencyEventRecord): void;
  /** Reads a model file into page cache ahead of its load. */
  prefetch(path: string): void;
  /** Persists what was learned about a model (measured bytes, load time). */
  learned(model: string, facts: LearnedFacts): void;
  /** A runner reported a figure that failed its check (report-checks.ts); it was left out. */
  reportRejected(runnerId: string, report: string, reason: string): void;
  /** Fetches a model's missing file from its source; the answer comes as downloadProgress / downloadDone / downloadFailed. */
  startDownload(order: DownloadOrder): void;
  /** The waiter's model is being downloaded: bytes so far, of `totalBytes` (0 while unknown). */
  notifyDownloading(waiterId: string, model: string, downloadedBytes: number, totalBytes: number): void;
}

/** One model file to fetch into models_dir. */
export interface DownloadOrder {
  model: string;
  /** The source as the catalog names it: `hf:…` or an http(s) URL. */
  source: string;
  /** Where the file goes: the model's path (in models_dir). */
  path: string;
  /** Hex SHA-256 the file must have (config `sha256`); a mismatch deletes it and fails the download. */
  sha256?: string;
}

export interface LearnedFacts {
  measuredBytes?: number;
  estimatedBytes?: number;
  /** Of measuredBytes / estimatedBytes, the GPU's part (absent in files written before GPU budgets). */
  measuredGpuBytes?: number;
  estimatedGpuBytes?: number;
  loadMs?: number;
  /** The file the facts were learned from: size and mtime, so a changed file invalidates them. */
  fileBytes: number;
  fileMtimeMs: number;
}

export interface PlacementSettings {
  budgetBytes: number;
  /**
   * `gpu_budget` in bytes on a discrete GPU (common/system/resolve-gpu-budget.ts): models'
   * GPU bytes are charged to it and only their host bytes to budgetBytes. Absent: GPU memory
   * is not budgeted and a model's whole footprint is charged to budgetBytes.
   */
  gpuBudgetBytes?: number;
  policyName: "lru" | "cost";
  spareRunners: number;
  queueMax: number;
  queueTimeoutMs: number;
  minResidencyMs: number;
  fairnessMs: number;
  prefetch: boolean;
  /** First-use downloads running at once (`placement.max_downloads`); more wait for one to finish. */
  maxDownloads: number;
  /** RSS of a runner with no model, until a runner reports its own. */
  runnerBaseBytesGuess: number;
  /** After this many consecutive failed loads of a model, its waiters get UNAVAILABLE. */
  maxLoadAttempts: number;
  /** The box's physical memory (MemTotal): no runner's RSS can be more. */
  physicalBytes: number;
}

export interface CatalogModel {
  config: ModelConfig;
  fileBytes: number;
  fileMtimeMs: number;
  learned?: LearnedFacts;
  /** The file was not on disk when the catalog was read: a model with a source is fetched on first use. */
  fileMissing?: boolean;
}

/** A runner process's own life; what it does with models is in its hosted models. */
export type RunnerState = "starting" | "ready" | "stopping";

/** Why a model leaves a runner. */
export type UnloadCause = "evicted" | "idle_ttl" | "admin_unload" | "extra_replica" | "over_budget" | "runner_recycled";

export type WaiterKind = "lease" | "load";

/** Load timings a runner measured: total, then weights, context creation, warm-up. */
export interface LoadTimings {
  loadMs: number;
  modelLoadMs: number;
  contextMs: number;
  warmUpMs: number;
}

/**
 * Everything placement reports about residency, as typed events. Every consumer (watch,
 * logs, traces, metrics) reads these and parses nothing.
 */
export type ResidencyChange =
  | { kind: "queued"; model: string; waiterId: string; waiterKind: WaiterKind }
  | { kind: "dequeued"; model: string; waiterId: string }
  | { kind: "loading"; model: string; runnerId: string; path: string; bytes: number; overcommittedBytes: number; forWaiter: string | undefined }
  | { kind: "loaded"; model: string; runnerId: string; measuredBytes: number; rssBytes: number; fileBytes: number; timings: LoadTimings | undefined }
  | { kind: "load_failed"; model: string; runnerId: string; reason: string }
  | { kind: "unloading"; model: string; runnerId: string; bytes: number; reason: UnloadReason; forWaiter: string | undefined }
  | { kind: "unloaded"; model: string; runnerId: string; reason: UnloadReason; rssBeforeBytes: number; rssAfterBytes: number }
  | { kind: "runner_started"; runnerId: string; rssBytes: number }
  | { kind: "runner_exited"; runnerId: string; models: string[]; loading: string[]; expected: boolean; exitCode: number | null }
  | { kind: "pinned" | "unpinned"; model: string }
  | { kind: "downloading"; model: string; source: string; path: string }
  | { kind: "downloaded"; model: string; path: string; bytes: number; downloadMs: number }
  | { kind: "download_failed"; model: string; reason: string };

/** A residency change with when it happened and the queue depth then. */
export type ResidencyEventRecord = ResidencyChange & { timeMs: number; queueDepth: number };
