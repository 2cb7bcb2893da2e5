import { decideEviction } from "../../services/placement/policies/decide-eviction.js";
import type { EvictionPolicy, ResidentModel } from "../../services/placement/policies/eviction-policy.js";
import { type LoadCostModel, loadCostMs } from "./load-cost.js";
import type { SimulationResult } from "./simulate.js";
import type { Trace } from "./trace.js";

/** Belady-Size knows the future: its state is how many requests have been served. */
export interface BeladyState {
  readonly served: number;
}

/**
 * Belady-Size (offline heuristic, not optimal with sizes and costs): evict first the
 * resident model with the largest next-use distance × bytes ÷ reload cost, i.e. the
 * most memory-time freed per ms of reload; never-used-again models go first, largest
 * first. Built for one trace and replayed by simulate() like any other policy.
 */
export function beladySize(trace: Trace): EvictionPolicy<BeladyState> {
  const positions = new Map<string, number[]>();
  trace.requests.forEach((request, index) => {
    const list = positions.get(request.model) ?? [];
    list.push(index);
    positions.set(request.model, list);
  });
  const nextUseAfter = (model: string, index: number): number => {
    const list = positions.get(model) ?? [];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]! <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length ? list[lo]! : Infinity;
  };
  const evictionScore = (model: ResidentModel, current: number): number =>
    ((nextUseAfter(model.name, current) - current) * model.bytes) / Math.max(1e-9, model.reloadCostMs);

  return {
    name: "belady-size",
    initialState: () => ({ served: 0 }),
    onAccess: (state) => ({ served: state.served + 1 }),
    onEvict: (state) => state,
    decide: (state, request) =>
      decideEviction(request, (candidates) =>
        candidates
          .map((model) => ({ model, score: evictionScore(model, state.served) }))
          .sort((a, b) => b.score - a.score || b.model.bytes - a.model.bytes || a.model.name.localeCompare(b.model.name))
          .map(({ model }) => model),
      ),
  };
}

/** The exact DP keeps one cost per resident set: 2^models of them. */
export const maxModelsForExactOptimum = 12;

/**
 * The exact offline optimum: minimum total load cost to serve the requests in order,
 * starting empty, where each request needs its model resident and the resident set
 * must fit the budget. Dynamic programming over resident sets (bitmasks):
 *   cost_i(T) = min over S of cost_{i-1}(S) + [m_i ∉ S] × load(m_i),  m_i ∈ T ⊆ S ∪ {m_i}.
 * Evicting is free, so a state is dominated by any superset of equal or lower cost; a
 * superset-minimum pass (O(n 2^n)) folds evictions in, giving O(requests × n × 2^n).
 * Loading only on demand loses nothing (a prefetch can always be deferred to its use).
 */
export function optimalSwapCost(trace: Trace, budgetBytes: number, load: LoadCostModel): SimulationResult {
  const n = trace.models.length;
  if (n > maxModelsForExactOptimum) {
    throw new Error(`exact optimum supports at most ${maxModelsForExactOptimum} models, trace has ${n}`);
  }
  const indexOf = new Map(trace.models.map((m, i) => [m.name, i]));
  const loadCost = trace.models.map((m) => loadCostMs(m.bytes, load));
  const sets = 1 << n;
  const setBytes = new Float64Array(sets);
  for (let set = 1; set < sets; set++) {
    const low = 31 - Math.clz32(set & -set);
    setBytes[set] = setBytes[set & (set - 1)]! + trace.models[low]!.bytes;
  }

  let cost = new Float64Array(sets).fill(Infinity);
  cost[0] = 0;
  const parents: Int32Array[] = [];
  const requested: number[] = [];
  const supersetMin = new Float64Array(sets);
  const supersetArg = new Int32Array(sets);

  for (const request of trace.requests) {
    const model = indexOf.get(request.model);
    if (model === undefined) throw new Error(`trace requests unknown model ${request.model}`);
    if (trace.models[model]!.bytes > budgetBytes) throw new Error(`${request.model} is larger than the budget`);
    const bit = 1 << model;

    supersetMin.set(cost);
    for (let set = 0; set < sets; set++) supersetArg[set] = set;
    for (let b = 0; b < n; b++) {
      const with_b = 1 << b;
      for (let set = 0; set < sets; set++) {
        if (set & with_b) continue;
        if (supersetMin[set | with_b]! < supersetMin[set]!) {
          supersetMin[set] = supersetMin[set | with_b]!;
          supersetArg[set] = supersetArg[set | with_b]!;
        }
      }
    }

    const next = new Float64Array(sets).fill(Infinity);
    const parent = new Int32Array(sets).fill(-1);
    for (let set = bit; set < sets; set++) {
      if (!(set & bit) || setBytes[set]! > budgetBytes) continue;
      const alreadyResident = supersetMin[set]!;
      const loaded = supersetMin[set ^ bit]! + loadCost[model]!;
      if (alreadyResident <= loaded) {
        next[set] = alreadyResident;
        parent[set] = supersetArg[set]!;
      } else {
        next[set] = loaded;
        parent[set] = supersetArg[set ^ bit]!;
      }
    }
    cost = next;
    parents.push(parent);
    requested.push(model);
  }

  let best = 0;
  for (let set = 0; set < sets; set++) if (cost[set]! < cost[best]!) best = set;
  const result: SimulationResult = { policy: "optimum", swaps: 0, bytesLoaded: 0, swapCostMs: cost[best]!, evictions: 0 };
  let set = best;
  for (let i = parents.length - 1; i >= 0; i--) {
    const previous = parents[i]![set]!;
    const model = requested[i]!;
    if (!(previous & (1 << model))) {
      result.swaps += 1;
      result.bytesLoaded += trace.models[model]!.bytes;
    }
    result.evictions += popcount(previous & ~set);
    set = previous;
  }
  return result;
}

function popcount(x: number): number {
  let count = 0;
  for (let v = x; v !== 0; v &= v - 1) count++;
  return count;
}
