import assert from "node:assert/strict";
import { evictionCandidates } from "../services/placement/policies/candidates.js";
import type {
  EvictionDecision,
  EvictionPolicy,
  EvictionRequest,
  ResidentModel,
} from "../services/placement/policies/eviction-policy.js";
import { cost, createCostPolicy, type GdsfState } from "../services/placement/policies/gdsf.js";
import { lru } from "../services/placement/policies/lru.js";
import { knownPolicyNames, policyByName, type AnyEvictionPolicy } from "../services/placement/policies/registry.js";
import { pickVictimSet } from "../services/placement/policies/victim-set.js";

const MB = 1_000_000;

function model(name: string, overrides: Partial<ResidentModel> = {}): ResidentModel {
  return {
    name,
    bytes: 100 * MB,
    pinned: false,
    leases: 0,
    loadedAtMs: 0,
    lastUsedMs: 0,
    useCount: 1,
    reloadCostMs: 220,
    priority: 0,
    ...overrides,
  };
}

function request(resident: ResidentModel[], overrides: Partial<EvictionRequest> = {}): EvictionRequest {
  return { needBytes: 100 * MB, budgetBytes: 300 * MB, resident, nowMs: 10_000, minResidencyMs: 0, ...overrides };
}

/** Feeds the resident models' accesses (useCount each, in lastUsedMs order) to the policy. */
function stateAfterAccesses<S>(policy: EvictionPolicy<S>, resident: readonly ResidentModel[]): S {
  const accesses = resident
    .flatMap((m) => Array.from({ length: m.useCount }, (_, i) => ({ m, at: m.lastUsedMs - (m.useCount - 1 - i) })))
    .sort((a, b) => a.at - b.at);
  let state = policy.initialState();
  for (const { m, at } of accesses) state = policy.onAccess(state, m, at);
  return state;
}

function decideAfterAccesses<S>(policy: EvictionPolicy<S>, req: EvictionRequest): EvictionDecision {
  return policy.decide(stateAfterAccesses(policy, req.resident), req);
}

const bothPolicies: AnyEvictionPolicy[] = [lru, cost];

describe("eviction policies", () => {
  describe("lru", () => {
    const cases: { title: string; needBytes: number; victims: string[] }[] = [
      { title: "one victim: the least recently used", needBytes: 100 * MB, victims: ["old"] },
      { title: "two victims: the two least recently used", needBytes: 200 * MB, victims: ["old", "mid"] },
      { title: "all three", needBytes: 300 * MB, victims: ["old", "mid", "new"] },
    ];
    for (const { title, needBytes, victims } of cases) {
      it(title, () => {
        // arrange
        const resident = [
          model("new", { lastUsedMs: 3000 }),
          model("old", { lastUsedMs: 1000 }),
          model("mid", { lastUsedMs: 2000 }),
        ];
        // act
        const decision = lru.decide(null, request(resident, { needBytes }));
        // assert
        assert.deepEqual(decision, { kind: "evict", victims, freedBytes: victims.length * 100 * MB });
      });
    }

    it("breaks recency ties by lower priority", () => {
      // arrange
      const resident = [model("important", { priority: 2 }), model("plain", { priority: 0 })];
      // act
      const decision = lru.decide(null, request(resident, { budgetBytes: 200 * MB }));
      // assert
      assert.deepEqual(decision, { kind: "evict", victims: ["plain"], freedBytes: 100 * MB });
    });
  });

  describe("cost (GreedyDual-Size-Frequency)", () => {
    it("keeps a small, frequently used model over a large, rarely used one, where lru would not", () => {
      // arrange: the small model is the least recently used
      const resident = [
        model("small-hot", { bytes: 100 * MB, reloadCostMs: 220, useCount: 10, lastUsedMs: 1000 }),
        model("large-cold", { bytes: 1000 * MB, reloadCostMs: 860, useCount: 1, lastUsedMs: 2000 }),
      ];
      const req = request(resident, { needBytes: 200 * MB, budgetBytes: 1200 * MB });
      // act
      const byCost = decideAfterAccesses(cost, req);
      const byLru = decideAfterAccesses(lru, req);
      // assert
      assert.deepEqual(byCost, { kind: "evict", victims: ["large-cold"], freedBytes: 1000 * MB });
      assert.deepEqual(byLru, { kind: "evict", victims: ["small-hot"], freedBytes: 100 * MB });
    });

    it("ranks by reload cost per byte when frequencies are equal", () => {
      // arrange: same size, one is four times as costly to reload
      const resident = [model("cheap", { reloadCostMs: 100, lastUsedMs: 2 }), model("dear", { reloadCostMs: 400, lastUsedMs: 1 })];
      // act
      const decision = decideAfterAccesses(cost, request(resident, { budgetBytes: 200 * MB }));
      // assert
      assert.deepEqual(decision, { kind: "evict", victims: ["cheap"], freedBytes: 100 * MB });
    });

    it("weights value by 2^priority", () => {
      // arrange: b is twice as costly per byte, a has priority 2 (×4)
      const resident = [
        model("a", { reloadCostMs: 100, priority: 2, lastUsedMs: 1 }),
        model("b", { reloadCostMs: 200, lastUsedMs: 2 }),
      ];
      const state = stateAfterAccesses(cost, resident);
      // act
      const decision = cost.decide(state, request(resident, { budgetBytes: 200 * MB }));
      // assert
      assert.deepEqual(decision, { kind: "evict", victims: ["b"], freedBytes: 100 * MB });
    });

    it("raises the clock to the H of the evicted victim and remembers its frequency", () => {
      // arrange
      const victim = model("victim", { bytes: 100, reloadCostMs: 50 });
      let state: GdsfState = cost.initialState();
      state = cost.onAccess(state, victim, 0);
      state = cost.onAccess(state, victim, 1);
      const before = state.entries.get("victim")!;
      // act
      const after = cost.onEvict(state, ["victim"]);
      // assert
      assert.equal(after.clock, before.resident!.value);
      assert.ok(after.clock > 0);
      assert.equal(after.entries.get("victim")!.resident, undefined);
      assert.ok(after.entries.get("victim")!.frequency > 1.9);
    });

    it("ages frequency by the half-life", () => {
      // arrange
      const policy = createCostPolicy({ frequencyHalfLifeAccesses: 1 });
      const a = model("a");
      const b = model("b");
      let state = policy.initialState();
      state = policy.onAccess(state, a, 0);
      // act: one access to b, then a again: a's old count has halved twice (2 accesses later)
      state = policy.onAccess(state, b, 1);
      state = policy.onAccess(state, a, 2);
      // assert
      assert.equal(state.entries.get("a")!.frequency, 1 + 0.25);
    });

    it("does not mutate the state it is given", () => {
      // arrange
      const state = cost.onAccess(cost.initialState(), model("a"), 0);
      const snapshot = JSON.stringify([...state.entries]);
      // act
      cost.onAccess(state, model("a"), 1);
      cost.onEvict(state, ["a"]);
      // assert
      assert.equal(JSON.stringify([...state.entries]), snapshot);
      assert.equal(state.clock, 0);
    });
  });

  describe("any policy", () => {
    for (const policy of bothPolicies) {
      describe(policy.name, () => {
        it("never chooses pinned or leased models", () => {
          // arrange: the protected models are the oldest and the least valuable
          const resident = [
            model("pinned", { pinned: true, lastUsedMs: 1, reloadCostMs: 1 }),
            model("leased", { leases: 2, lastUsedMs: 2, reloadCostMs: 1 }),
            model("free", { lastUsedMs: 3, reloadCostMs: 1000 }),
          ];
          // act
          const decision = decideAfterAccesses(policy, request(resident));
          // assert
          assert.deepEqual(decision, { kind: "evict", victims: ["free"], freedBytes: 100 * MB });
        });

        it("never chooses a model younger than the minimum residency", () => {
          // arrange
          const resident = [
            model("young", { loadedAtMs: 9500, lastUsedMs: 9500, reloadCostMs: 1 }),
            model("settled", { loadedAtMs: 1000, lastUsedMs: 9900, reloadCostMs: 1000 }),
            model("pinned", { pinned: true }),
          ];
          // act
          const decision = decideAfterAccesses(policy, request(resident, { nowMs: 10_000, minResidencyMs: 1000 }));
          // assert
          assert.deepEqual(decision, { kind: "evict", victims: ["settled"], freedBytes: 100 * MB });
        });

        it("evicts the fewest bytes that make room (a large victim alone instead of small ones too)", () => {
          // arrange: in either policy's order the small models come first
          const resident = [
            model("small-1", { bytes: 100 * MB, lastUsedMs: 1, reloadCostMs: 100 }),
            model("small-2", { bytes: 100 * MB, lastUsedMs: 2, reloadCostMs: 100 }),
            model("large", { bytes: 500 * MB, lastUsedMs: 3, reloadCostMs: 500 }),
          ];
          // act: 700 MB resident of 800 MB; 550 MB needed, so 450 MB of room must be made
          const decision = decideAfterAccesses(policy, request(resident, { needBytes: 550 * MB, budgetBytes: 800 * MB }));
          // assert
          assert.deepEqual(decision, { kind: "evict", victims: ["large"], freedBytes: 500 * MB });
        });

        it("evicts nothing when the model already fits", () => {
          // arrange
          const resident = [model("a"), model("b")];
          // act
          const decision = decideAfterAccesses(policy, request(resident, { needBytes: 100 * MB, budgetBytes: 300 * MB }));
          // assert
          assert.deepEqual(decision, { kind: "fits" });
        });

        it("is blocked, reporting reclaimable bytes, when the candidates cannot make room", () => {
          // arrange: 250 MB of room needed, only the 100 MB model is evictable
          const resident = [model("pinned", { pinned: true }), model("leased", { leases: 1 }), model("free")];
          // act
          const decision = decideAfterAccesses(policy, request(resident, { needBytes: 250 * MB }));
          // assert
          assert.equal(decision.kind, "blocked");
          assert.equal(decision.kind === "blocked" && decision.reclaimableBytes, 100 * MB);
          assert.match(decision.kind === "blocked" ? decision.reason : "", /pinned 100000000, leased 100000000/);
        });

        it("is blocked when the model is larger than the whole budget", () => {
          // arrange
          const resident = [model("a")];
          // act
          const decision = decideAfterAccesses(policy, request(resident, { needBytes: 400 * MB }));
          // assert
          assert.deepEqual(decision, {
            kind: "blocked",
            reason: `needs ${400 * MB} bytes, more than the whole budget of ${300 * MB} bytes`,
            reclaimableBytes: 100 * MB,
          });
        });
      });
    }
  });

  describe("evictionCandidates", () => {
    it("keeps only unpinned, unleased models past the minimum residency", () => {
      // arrange
      const resident = [
        model("pinned", { pinned: true }),
        model("leased", { leases: 1 }),
        model("young", { loadedAtMs: 9_999 }),
        model("exactly-old-enough", { loadedAtMs: 9_000 }),
        model("old"),
      ];
      // act
      const names = evictionCandidates(resident, 10_000, 1000).map((m) => m.name);
      // assert
      assert.deepEqual(names, ["exactly-old-enough", "old"]);
    });
  });

  describe("pickVictimSet", () => {
    const cases: { title: string; sizes: number[]; room: number; victims: number[] | undefined }[] = [
      { title: "first candidate suffices", sizes: [100, 200], room: 50, victims: [0] },
      { title: "prefix needed whole", sizes: [100, 100, 100], room: 250, victims: [0, 1, 2] },
      { title: "a later large one makes the small ones unnecessary", sizes: [100, 100, 500], room: 450, victims: [2] },
      { title: "spares the dearer unnecessary victim first", sizes: [100, 200, 50], room: 150, victims: [1] },
      { title: "keeps a cheap one when the dear one alone is not enough", sizes: [60, 100], room: 150, victims: [0, 1] },
      { title: "undefined when all together are not enough", sizes: [100, 100], room: 300, victims: undefined },
      { title: "nothing when no room is needed", sizes: [100], room: 0, victims: [] },
    ];
    // Two dimensions: [host, gpu] per candidate, room needed in each.
    const twoDimensional: { title: string; sizes: [number, number][]; room: [number, number]; victims: number[] | undefined }[] = [
      { title: "passes over a host-only candidate while only the GPU is short", sizes: [[500, 0], [10, 100]], room: [0, 50], victims: [1] },
      { title: "takes a host-only candidate when host memory is short too", sizes: [[500, 0], [10, 100]], room: [200, 50], victims: [0, 1] },
      { title: "spares one whose room the others already cover in both", sizes: [[100, 100], [100, 100], [300, 300]], room: [250, 250], victims: [2] },
      { title: "undefined when the GPU memory of all together is not enough", sizes: [[500, 0], [10, 40]], room: [0, 50], victims: undefined },
    ];
    for (const { title, sizes, room, victims } of twoDimensional) {
      it(title, () => {
        // arrange
        const ranked = sizes.map(([bytes, gpuBytes], i) => model(String(i), { bytes, gpuBytes }));
        // act
        const picked = pickVictimSet(ranked, room[0], room[1]);
        // assert
        assert.deepEqual(picked?.map((m) => Number(m.name)), victims);
      });
    }
    for (const { title, sizes, room, victims } of cases) {
      it(title, () => {
        // arrange
        const ranked = sizes.map((bytes, i) => model(String(i), { bytes }));
        // act
        const picked = pickVictimSet(ranked, room);
        // assert
        assert.deepEqual(picked?.map((m) => Number(m.name)), victims);
      });
    }
  });

  describe("two budgets: host memory and a discrete GPU's (gpu_budget)", () => {
    // Host budget 300 MB, GPU budget 200 MB. "cpu-big" is a CPU-only model (no GPU bytes), the
    // least recently used; "gpu-a" and "gpu-b" hold VRAM and a little host memory each.
    const resident = () => [
      model("cpu-big", { bytes: 150 * MB, gpuBytes: 0, lastUsedMs: 1 }),
      model("gpu-a", { bytes: 20 * MB, gpuBytes: 120 * MB, lastUsedMs: 2 }),
      model("gpu-b", { bytes: 20 * MB, gpuBytes: 60 * MB, lastUsedMs: 3 }),
    ];
    const cases: { title: string; needBytes: number; needGpuBytes: number; decision: EvictionDecision["kind"]; victims?: string[]; reason?: RegExp }[] = [
      { title: "fits when both dimensions have room", needBytes: 50 * MB, needGpuBytes: 20 * MB, decision: "fits" },
      {
        title: "VRAM full, RAM free: evicts the model holding VRAM, not the older, bigger CPU-only model",
        needBytes: 20 * MB,
        needGpuBytes: 100 * MB,
        decision: "evict",
        victims: ["gpu-a"],
      },
      {
        title: "RAM full, VRAM free: evicts the least recently used, which frees host memory",
        needBytes: 200 * MB,
        needGpuBytes: 0,
        decision: "evict",
        victims: ["cpu-big"],
      },
      {
        title: "both short: victims cover each dimension, and none is kept that could be spared",
        needBytes: 200 * MB,
        needGpuBytes: 120 * MB,
        decision: "evict",
        victims: ["cpu-big", "gpu-a"],
      },
      {
        title: "more VRAM than the whole GPU budget: blocked, whatever is evicted",
        needBytes: 10 * MB,
        needGpuBytes: 250 * MB,
        decision: "blocked",
        reason: /needs 250000000 bytes of GPU memory, more than the whole GPU budget of 200000000 bytes/,
      },
    ];
    for (const { title, needBytes, needGpuBytes, decision, victims, reason } of cases) {
      it(title, () => {
        // arrange
        const req = request(resident(), { needBytes, needGpuBytes, gpuBudgetBytes: 200 * MB });
        // act
        const decided = lru.decide(null, req);
        // assert
        assert.equal(decided.kind, decision);
        if (victims) assert.deepEqual(decided.kind === "evict" ? decided.victims : [], victims);
        if (reason) assert.match(decided.kind === "blocked" ? decided.reason : "", reason);
      });
    }

    it("blocked when the VRAM is held by a model with a stream, though a CPU-only model could go", () => {
      // arrange
      const busy = resident().map((m) => (m.name === "cpu-big" ? m : { ...m, leases: 1 }));
      // act
      const decided = lru.decide(null, request(busy, { needBytes: 20 * MB, needGpuBytes: 100 * MB, gpuBudgetBytes: 200 * MB }));
      // assert
      assert.equal(decided.kind, "blocked");
      assert.match(decided.kind === "blocked" ? decided.reason : "", /needs 80000000 more bytes of GPU memory but only 0 are reclaimable now \(pinned 0, leased 40000000/);
    });

    it("counts GPU bytes only when the request has a GPU budget (unified memory, or none set)", () => {
      // arrange: the same residents; their gpuBytes are ignored without gpuBudgetBytes
      const req = request(resident(), { needBytes: 100 * MB, needGpuBytes: 1000 * MB });
      // act
      const decided = lru.decide(null, req);
      // assert: 190 MB host resident + 100 MB fits the 300 MB budget
      assert.equal(decided.kind, "fits");
    });

    it("cost ranks by reload cost per byte of host and GPU memory together", () => {
      // arrange: equal reload cost; "vram-heavy" holds 10x the memory in all, most of it on the GPU
      const residents = [model("vram-heavy", { bytes: 10 * MB, gpuBytes: 90 * MB, lastUsedMs: 2 }), model("small", { bytes: 10 * MB, gpuBytes: 0, lastUsedMs: 1 })];
      // act: RAM is short by 5 MB, so either frees enough
      const decided = decideAfterAccesses(cost, request(residents, { needBytes: 285 * MB, needGpuBytes: 0, gpuBudgetBytes: 200 * MB }));
      // assert: the one worth least per byte goes
      assert.deepEqual(decided.kind === "evict" ? decided.victims : decided, ["vram-heavy"]);
    });
  });

  describe("policyByName", () => {
    it("finds the configured policies", () => {
      // arrange // act
      const found = knownPolicyNames.map((name) => policyByName(name).name);
      // assert
      assert.deepEqual(found, ["lru", "cost"]);
    });

    it("throws an error naming the known policies", () => {
      // arrange // act // assert
      assert.throws(() => policyByName("lfu"), /unknown eviction policy "lfu"; known policies: lru, cost/);
      assert.throws(() => policyByName("toString"), /unknown eviction policy/);
    });
  });
});
