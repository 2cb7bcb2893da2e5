import type { EvictionPolicy, ResidentModel } from "../../services/placement/policies/eviction-policy.js";
import { type LoadCostModel, loadCostMs } from "./load-cost.js";
import type { ModelSpec, Trace } from "./trace.js";

export interface SimulationOptions {
  budgetBytes: number;
  load: LoadCostModel;
  /** Passed to the policy as is; 0 unless a test wants to see blocking. */
  minResidencyMs: number;
}

export interface SimulationResult {
  policy: string;
  /** Loads, cold ones included. */
  swaps: number;
  bytesLoaded: number;
  swapCostMs: number;
  evictions: number;
}

/** Requests for models larger than the whole budget are refused by placement; drop them. */
export function servableTrace(trace: Trace, budgetBytes: number): { trace: Trace; refusedRequests: number } {
  const servable = new Set(trace.models.filter((m) => m.bytes <= budgetBytes).map((m) => m.name));
  const requests = trace.requests.filter((r) => servable.has(r.model));
  return { trace: { models: trace.models, requests }, refusedRequests: trace.requests.length - requests.length };
}

/**
 * Replays the trace one request at a time with the same policy object placement uses:
 * on a miss ask decide(), apply its victims, load the model (cost = loadCostMs), then
 * report the access. Starts empty. Throws if the policy breaks the residency contract
 * (unknown or protected victim, still over budget) or blocks (nothing here holds leases).
 */
export function simulate<State>(trace: Trace, policy: EvictionPolicy<State>, options: SimulationOptions): SimulationResult {
  const specs = new Map<string, ModelSpec>(trace.models.map((m) => [m.name, m]));
  const resident = new Map<string, ResidentModel>();
  let state = policy.initialState();
  const result: SimulationResult = { policy: policy.name, swaps: 0, bytesLoaded: 0, swapCostMs: 0, evictions: 0 };

  for (const request of trace.requests) {
    const spec = specs.get(request.model);
    if (spec === undefined) throw new Error(`trace requests unknown model ${request.model}`);
    const reloadCostMs = loadCostMs(spec.bytes, options.load);
    const hit = resident.get(spec.name);

    if (hit !== undefined) {
      resident.set(spec.name, { ...hit, lastUsedMs: request.atMs, useCount: hit.useCount + 1 });
    } else {
      const decision = policy.decide(state, {
        needBytes: spec.bytes,
        budgetBytes: options.budgetBytes,
        resident: [...resident.values()],
        nowMs: request.atMs,
        minResidencyMs: options.minResidencyMs,
      });
      if (decision.kind === "blocked") throw new Error(`${policy.name} blocked at ${request.atMs} ms: ${decision.reason}`);
      if (decision.kind === "evict") {
        for (const victim of decision.victims) {
          const model = resident.get(victim);
          if (model === undefined || model.pinned || model.leases > 0) {
            throw new Error(`${policy.name} chose victim ${victim}, which is not evictable`);
          }
          resident.delete(victim);
        }
        result.evictions += decision.victims.length;
        state = policy.onEvict(state, decision.victims);
      }
      const usedBytes = [...resident.values()].reduce((sum, m) => sum + m.bytes, 0);
      if (usedBytes + spec.bytes > options.budgetBytes) {
        throw new Error(`${policy.name} left too little room for ${spec.name} at ${request.atMs} ms`);
      }
      resident.set(spec.name, {
        name: spec.name,
        bytes: spec.bytes,
        pinned: false,
        leases: 0,
        loadedAtMs: request.atMs,
        lastUsedMs: request.atMs,
        useCount: 1,
        reloadCostMs,
        priority: spec.priority,
      });
      result.swaps += 1;
      result.bytesLoaded += spec.bytes;
      result.swapCostMs += reloadCostMs;
    }
    const accessed = { name: spec.name, bytes: spec.bytes, reloadCostMs, priority: spec.priority };
    state = policy.onAccess(state, accessed, request.atMs);
  }
  return result;
}
