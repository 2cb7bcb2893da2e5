import assert from "node:assert/strict";
import { beladySize, optimalSwapCost } from "../bench/simulator/offline.js";
import type { LoadCostModel } from "../bench/simulator/load-cost.js";
import { seededRandom } from "../bench/simulator/random.js";
import { servableTrace, simulate, type SimulationOptions } from "../bench/simulator/simulate.js";
import { defaultTraceOptions, syntheticTrace, type Trace } from "../bench/simulator/trace.js";
import type { EvictionPolicy } from "../services/placement/policies/eviction-policy.js";
import { cost } from "../services/placement/policies/gdsf.js";
import { lru } from "../services/placement/policies/lru.js";

/** Load cost = bytes (in ms), so hand-computed figures stay readable. */
const costEqualsBytes: LoadCostModel = { fixedMs: 0, diskBytesPerMs: 1 };

function handTrace(sizes: Record<string, number>, sequence: string): Trace {
  return {
    models: Object.entries(sizes).map(([name, bytes]) => ({ name, bytes, priority: 0 })),
    requests: [...sequence].map((model, i) => ({ atMs: i * 1000, model })),
  };
}

function options(budgetBytes: number, load: LoadCostModel = costEqualsBytes): SimulationOptions {
  return { budgetBytes, load, minResidencyMs: 0 };
}

/** Exhaustive search over every demand-paging schedule: which resident models to keep on each miss. */
function bruteForceOptimum(trace: Trace, budgetBytes: number): number {
  const bytes = new Map(trace.models.map((m) => [m.name, m.bytes]));
  const search = (i: number, resident: readonly string[]): number => {
    if (i === trace.requests.length) return 0;
    const wanted = trace.requests[i]!.model;
    if (resident.includes(wanted)) return search(i + 1, resident);
    let best = Infinity;
    for (let keep = 0; keep < 1 << resident.length; keep++) {
      const kept = resident.filter((_, j) => keep & (1 << j));
      const used = kept.reduce((sum, name) => sum + bytes.get(name)!, 0) + bytes.get(wanted)!;
      if (used <= budgetBytes) best = Math.min(best, bytes.get(wanted)! + search(i + 1, [...kept, wanted]));
    }
    return best;
  };
  return search(0, []);
}

describe("swap simulator", () => {
  it("finds the hand-computed optimum on a tiny trace", () => {
    // arrange: C (3) never fits beside B (2) in 4 bytes, so after C every B reloads:
    // A 1 + B 2 + C 3 (keep A) + A hit + B 2 (evict C) + A hit = 8
    const trace = handTrace({ A: 1, B: 2, C: 3 }, "ABCABA");
    // act
    const optimum = optimalSwapCost(trace, 4, costEqualsBytes);
    // assert
    assert.equal(optimum.swapCostMs, 8);
    assert.equal(optimum.swaps, 4);
    assert.equal(optimum.bytesLoaded, 8);
  });

  it("makes lru miss every request of a loop one model larger than memory, and Belady only every other", () => {
    // arrange: three equal models, room for two, requested in a loop
    const trace = handTrace({ A: 2, B: 2, C: 2 }, "ABCABCABC");
    // act
    const byLru = simulate(trace, lru, options(4));
    const byBelady = simulate(trace, beladySize(trace), options(4));
    const optimum = optimalSwapCost(trace, 4, costEqualsBytes);
    // assert
    assert.equal(byLru.swaps, 9);
    assert.equal(byLru.swapCostMs, 18);
    assert.equal(byBelady.swaps, 6);
    assert.equal(optimum.swapCostMs, 12);
    assert.ok(byBelady.swapCostMs <= byLru.swapCostMs);
  });

  it("agrees with an exhaustive search on small random traces", () => {
    for (let seed = 1; seed <= 25; seed++) {
      // arrange
      const random = seededRandom(seed);
      const size = (): number => 1 + Math.floor(random() * 4);
      const sizes = { a: size(), b: size(), c: size(), d: size() };
      const sequence = Array.from({ length: 9 }, () => "abcd"[Math.floor(random() * 4)]!).join("");
      const trace = handTrace(sizes, sequence);
      // act
      const optimum = optimalSwapCost(trace, 5, costEqualsBytes);
      // assert
      assert.equal(optimum.swapCostMs, bruteForceOptimum(trace, 5), `seed ${seed}: ${JSON.stringify(sizes)} ${sequence}`);
    }
  });

  it("never finds a policy cheaper than the optimum on synthetic traces", () => {
    const load: LoadCostModel = { fixedMs: 150, diskBytesPerMs: 1.4e6 };
    for (let seed = 1; seed <= 5; seed++) {
      // arrange
      const full = syntheticTrace({ ...defaultTraceOptions, seed, models: 6, requests: 400 });
      const budgetBytes = Math.floor(0.4 * full.models.reduce((sum, m) => sum + m.bytes, 0));
      const { trace } = servableTrace(full, budgetBytes);
      const policies: EvictionPolicy<unknown>[] = [lru, cost, beladySize(trace)];
      // act
      const optimum = optimalSwapCost(trace, budgetBytes, load);
      const results = policies.map((policy) => simulate(trace, policy, options(budgetBytes, load)));
      // assert
      for (const result of results) {
        assert.ok(optimum.swapCostMs <= result.swapCostMs + 1e-6, `seed ${seed}: ${result.policy} beat the optimum`);
      }
    }
  });

  it("rejects a policy that leaves too little room", () => {
    // arrange
    const trace = handTrace({ A: 2, B: 2, C: 2 }, "ABC");
    const careless: EvictionPolicy<null> = { ...lru, name: "careless", decide: () => ({ kind: "fits" }) };
    // act // assert
    assert.throws(() => simulate(trace, careless, options(4)), /careless left too little room for C/);
  });

  describe("synthetic trace", () => {
    it("is the same for the same seed and different for another", () => {
      // arrange // act
      const first = syntheticTrace({ ...defaultTraceOptions, seed: 7, requests: 200 });
      const again = syntheticTrace({ ...defaultTraceOptions, seed: 7, requests: 200 });
      const other = syntheticTrace({ ...defaultTraceOptions, seed: 8, requests: 200 });
      // assert
      assert.deepEqual(again, first);
      assert.notDeepEqual(other, first);
    });

    it("has sizes in range, increasing times, Zipf skew and bursts", () => {
      // arrange
      const trace = syntheticTrace({ ...defaultTraceOptions, seed: 3, requests: 5000 });
      // act
      const counts = new Map<string, number>();
      let repeats = 0;
      trace.requests.forEach((r, i) => {
        counts.set(r.model, (counts.get(r.model) ?? 0) + 1);
        if (i > 0 && trace.requests[i - 1]!.model === r.model) repeats++;
      });
      const sorted = [...counts.values()].sort((a, b) => b - a);
      // assert
      assert.equal(trace.requests.length, 5000);
      assert.ok(trace.models.every((m) => m.bytes >= 50e6 && m.bytes <= 2e9));
      assert.ok(trace.requests.every((r, i) => i === 0 || r.atMs >= trace.requests[i - 1]!.atMs));
      assert.ok(sorted[0]! > 4 * sorted[sorted.length - 1]!, `not skewed: ${sorted}`);
      assert.ok(repeats > 0.5 * trace.requests.length, `not bursty: ${repeats} repeats`);
    });
  });
});
