import type { ModelswapError } from "../../common/errors.js";
import type { AnyEvictionPolicy } from "./policies/registry.js";
import type { MemoryLedger } from "./memory-ledger.js";
import type { PlacementSettings } from "./placement-types.js";
import type { ModelRecord, RunnerRecord, UnloadReason } from "./records.js";
import type { WaitQueue } from "./wait-queue.js";

/**
 * What the planner decides, as data. The core applies each action to its records and to
 * the world (through its effects); every action changes the state that led to it, so that
 * planning again converges.
 */
export type PlacementAction =
  | { kind: "reject"; waiterId: string; error: ModelswapError }
  | { kind: "grant"; waiterId: string; runnerId: string }
  /** An admin LoadModel waiter's model is resident. */
  | { kind: "load_done"; waiterId: string }
  | { kind: "load"; model: string; runnerId: string; forWaiter: string | undefined }
  | { kind: "spawn_runner" }
  | { kind: "unload"; model: string; runnerId: string; reason: UnloadReason; forWaiter: string | undefined }
  /** The policy's victims: every idle replica of each is unloaded. */
  | { kind: "evict"; victims: string[]; reason: UnloadReason; forWaiter: string | undefined }
  /** Ends a runner process; its models (if any) leave with it for `reason`. */
  | { kind: "stop_runner"; runnerId: string; kill: boolean; reason: UnloadReason | undefined }
  | { kind: "estimate"; model: string; runnerId: string }
  | { kind: "prefetch"; model: string }
  /** Held leases placement wants back: their holders release them (at once when idle). */
  | { kind: "revoke_leases"; leaseIds: string[] }
  /** The model's file is missing and its catalog entry names a source: fetch it (no memory is charged for it). */
  | { kind: "start_download"; model: string };

/** The read-only picture the planner decides from. */
export interface PlacementView {
  readonly nowMs: number;
  readonly settings: PlacementSettings;
  readonly models: ReadonlyMap<string, ModelRecord>;
  readonly runners: ReadonlyMap<string, RunnerRecord>;
  readonly queue: WaitQueue;
  readonly memory: MemoryLedger;
  readonly policy: AnyEvictionPolicy;
  readonly policyState: unknown;
  /** No runner is spawned before this moment (crash backoff). */
  readonly spawnBackoffUntilMs: number;
}
