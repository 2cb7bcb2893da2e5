import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { MiB, modelConfig, PlacementHarness } from "./placement-harness.js";
import { ModelState } from "../../gen/modelswap/v1/inference.js";

const loadsOf = (harness: PlacementHarness) =>
  harness.commands.filter((entry) => entry.command.command?.$case === "load").map((entry) => (entry.command.command as { value: { model: string } }).value.model);

/** Three 200 MiB models under a 500 MiB budget with one shared 50 MiB runner: two fit at once. */
function threeModels(settings = {}) {
  const harness = new PlacementHarness([modelConfig("a"), modelConfig("b"), modelConfig("c"), modelConfig("huge")], settings);
  for (const name of ["a", "b", "c"]) harness.sizes.set(name, 200 * MiB);
  harness.sizes.set("huge", 900 * MiB);
  return harness.start();
}

describe("placement core (state machine, fake runners, injected clock)", () => {
  describe("a request for a cold model", () => {
    it("is queued, loads the model in a spare runner, then gets a lease with load timings", () => {
      // arrange
      const harness = threeModels();
      harness.autoFinishLoads = false;
      // act
      const waiting = harness.request("w1", "a");
      // assert
      assert.deepEqual(waiting.queued, [1]);
      assert.equal(waiting.lease, undefined);
      assert.deepEqual(waiting.loading, [0]);
      harness.advance(200).finishLoads();
      assert.equal(harness.outcome("w1").lease?.model, "a");
      assert.equal(harness.outcome("w1").lease?.loadMs, 200);
      assert.deepEqual(harness.kinds("loaded"), ["a"]);
    });

    it("shares one load among concurrent requests for the same model", () => {
      const harness = threeModels();
      harness.autoFinishLoads = false;
      const outcomes = ["w1", "w2", "w3"].map((id) => harness.request(id, "a"));
      harness.finishLoads();
      assert.deepEqual(loadsOf(harness), ["a"]);
      // two sequences: two leases at once, the third waits for a free slot
      assert.equal(outcomes.filter((outcome) => outcome.lease).length, 2);
      harness.release("w1");
      assert.ok(outcomes[2]!.lease, "third request served when a sequence frees");
    });

    it("resolves aliases and answers unknown names with NOT_FOUND listing the catalog", () => {
      const harness = new PlacementHarness([modelConfig("stories", { aliases: ["tiny"] })]).start();
      assert.equal(harness.request("w1", "tiny").lease?.model, "stories");
      const unknown = harness.request("w2", "gpt-9");
      assert.equal(unknown.error?.code, status.NOT_FOUND);
      assert.match(unknown.error!.message, /known models: stories/);
    });
  });

  describe("swapping under the budget", () => {
    it("evicts the least recently used idle model to make room", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      harness.advance(10).release("w1");
      harness.request("w2", "b");
      harness.advance(10).release("w2");
      // act
      const third = harness.request("w3", "c");
      // assert
      assert.equal(third.lease?.model, "c");
      assert.deepEqual(harness.kinds("evicted"), ["a"]);
      assert.match(harness.events.find((event) => event.kind === "evicted")!.reason, /evicted by lru for c/);
    });

    it("never evicts a model with a stream in flight, and waits for it instead", () => {
      const harness = threeModels();
      harness.request("w1", "a"); // a keeps its lease
      harness.advance(10);
      harness.request("w2", "b"); // b keeps its lease too
      // act
      const third = harness.request("w3", "c");
      // assert: nothing can be evicted; c waits
      assert.equal(third.lease, undefined);
      assert.deepEqual(harness.kinds("evicted"), []);
      assert.ok(harness.prefetched.includes("/models/c.gguf"), "c is read into page cache while it waits");
      harness.release("w2");
      assert.deepEqual(harness.kinds("evicted"), ["b"]);
      assert.equal(harness.outcome("w3").lease?.model, "c");
    });

    it("never evicts a pinned model", () => {
      const harness = new PlacementHarness([modelConfig("a", { pin: true }), modelConfig("b"), modelConfig("c")]);
      for (const name of ["a", "b", "c"]) harness.sizes.set(name, 200 * MiB);
      harness.start();
      harness.request("w1", "b");
      harness.advance(10).release("w1");
      harness.advance(10);
      const third = harness.request("w2", "c");
      assert.equal(third.lease?.model, "c");
      assert.deepEqual(harness.kinds("evicted"), ["b"], "pinned a was loaded at start and kept");
    });

    it("keeps the committed bytes within the budget at every step", () => {
      const harness = threeModels();
      const order = ["a", "b", "c", "a", "c", "b", "a", "b", "c", "c", "a"];
      order.forEach((model, index) => {
        const outcome = harness.request(`w${index}`, model);
        assert.ok(outcome.lease, `request ${index} for ${model} served`);
        const status = harness.core.status();
        const runnersBytes = status.runners.length * 50 * MiB + status.residentBytes;
        assert.ok(runnersBytes <= 500 * MiB, `step ${index}: ${runnersBytes / MiB} MiB committed`);
        harness.advance(5).release(`w${index}`);
      });
    });

    it("counts the runners of evicted models as freed: a big model fits after two small ones go", () => {
      // arrange: a and b resident beside a spare runner; c needs nearly the whole budget
      const harness = threeModels();
      harness.sizes.set("c", 380 * MiB);
      harness.request("w1", "a");
      harness.advance(10).release("w1");
      harness.request("w2", "b");
      harness.advance(10).release("w2");
      // act
      const big = harness.request("w3", "c");
      // assert
      assert.equal(big.lease?.model, "c");
      assert.deepEqual(harness.kinds("evicted").sort(), ["a", "b"]);
      const status = harness.core.status();
      const committed = status.runners.reduce((sum, runner) => sum + runner.rssBytes, 0);
      assert.ok(committed <= 500 * MiB, `runners hold ${committed / MiB} MiB`);
    });

    it("evicts to free a runner for a model that needs a process of its own (isolation: process)", () => {
      // arrange: a fills the shared runner; b fits in memory but not beside a second runner
      const harness = new PlacementHarness([modelConfig("a"), modelConfig("b", { isolation: "process" })], { budgetBytes: 300 * MiB });
      harness.sizes.set("a", 150 * MiB);
      harness.sizes.set("b", 100 * MiB);
      harness.start();
      harness.request("w1", "a");
      harness.advance(10).release("w1");
      // act
      const outcome = harness.request("w2", "b");
      // assert: a went, and b got a runner to itself
      assert.equal(outcome.lease?.model, "b");
      assert.deepEqual(harness.kinds("evicted"), ["a"]);
      const runner = harness.core.status().runners.find((entry) => entry.id === outcome.lease!.runnerId)!;
      assert.deepEqual({ isolated: runner.isolated, models: runner.models.map((model) => model.name) }, { isolated: true, models: ["b"] });
      assert.ok(harness.committed() <= 300 * MiB);
    });

    it("recycles a runner that kept memory from a model it unloaded, when a load needs that memory", () => {
      // arrange: one runner's worth of budget; unloading a leaves 40 MiB of heap behind
      const harness = new PlacementHarness([modelConfig("a"), modelConfig("b")], { spareRunners: 1, budgetBytes: 300 * MiB });
      harness.sizes.set("a", 150 * MiB);
      harness.sizes.set("b", 220 * MiB);
      harness.retainedAfterUnload = 40 * MiB;
      harness.start();
      harness.request("w1", "a");
      harness.advance(10).release("w1");
      // act: b fits in a fresh runner (50 + 220), not in the one that kept 40 MiB (90 + 220), nor beside the spare
      const b = harness.request("w2", "b");
      // assert
      assert.equal(b.lease?.model, "b");
      assert.deepEqual(harness.kinds("evicted"), ["a"]);
      assert.ok(harness.kinds("runner_exited").length >= 1, "the runner that kept memory was replaced");
    });

    it("loads a cold model with no spare runners configured", () => {
      const harness = new PlacementHarness([modelConfig("a")], { spareRunners: 0 }).start();
      assert.equal(harness.request("w1", "a").lease?.model, "a");
    });

    it("refuses a model larger than the whole budget at once with FAILED_PRECONDITION", () => {
      const harness = threeModels();
      const outcome = harness.request("w1", "huge");
      assert.equal(outcome.error?.code, status.FAILED_PRECONDITION);
      assert.match(outcome.error!.message, /needs about 900\.0 MiB but the memory budget is 500\.0 MiB/);
      const again = harness.request("w2", "huge");
      assert.equal(again.error?.code, status.FAILED_PRECONDITION, "known size: refused before queueing");
      assert.equal(harness.request("w3", "a").lease?.model, "a", "nothing else disturbed");
    });

    it("serves a model larger than the budget when it is marked allow_overcommit", () => {
      const harness = new PlacementHarness([modelConfig("huge", { allowOvercommit: true })]);
      harness.sizes.set("huge", 900 * MiB);
      harness.start();
      assert.equal(harness.request("w1", "huge").lease?.model, "huge");
    });
  });

  describe("the wait queue", () => {
    it("fails a request whose deadline passes while it waits, with DEADLINE_EXCEEDED", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      harness.request("w2", "b");
      const waiting = harness.request("w3", "c", harness.now + 1_000);
      harness.advance(1_001);
      assert.equal(waiting.error?.code, status.DEADLINE_EXCEEDED);
      assert.match(waiting.error!.message, /waited 1001 ms for model "c"/);
    });

    it("answers RESOURCE_EXHAUSTED with a retry hint when full", () => {
      const harness = threeModels({ queueMax: 2 });
      harness.request("w1", "a");
      harness.request("w2", "b");
      harness.request("w3", "c");
      harness.request("w4", "c");
      const refused = harness.request("w5", "c");
      assert.equal(refused.error?.code, status.RESOURCE_EXHAUSTED);
      assert.ok(refused.error!.retryAfterSeconds! > 0);
    });

    it("tells each waiter its position as the queue moves", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      harness.request("w2", "b");
      const first = harness.request("w3", "c");
      const second = harness.request("w4", "c");
      assert.deepEqual(first.queued, [1]);
      assert.deepEqual(second.queued, [2]);
    });

    it("stops admitting new streams to a busy model once a cold request waited past the fairness bound", () => {
      // arrange: a and b busy; c waits; a keeps getting new requests
      const harness = threeModels({ fairnessMs: 5_000 });
      harness.request("a1", "a");
      harness.request("b1", "b");
      const cold = harness.request("c1", "c");
      harness.advance(6_000);
      // act: a new request for a arrives behind the starving one while a's stream ends
      harness.request("a2", "a");
      harness.release("a1");
      // assert: a is drained and evicted for c instead of serving a2 first
      assert.equal(cold.lease?.model, "c");
      assert.deepEqual(harness.kinds("evicted"), ["a"]);
    });
  });

  describe("what can never be served is refused, not waited on", () => {
    it("refuses a model that only fits if a pinned model went, and keeps serving the pinned one", () => {
      const harness = new PlacementHarness([modelConfig("a", { pin: true }), modelConfig("b")], { fairnessMs: 1_000 });
      harness.sizes.set("a", 300 * MiB);
      harness.sizes.set("b", 300 * MiB);
      harness.start();
      const b = harness.request("w1", "b");
      assert.equal(b.error?.code, status.FAILED_PRECONDITION);
      assert.match(b.error!.message, /pinned models hold .* unpin a model/);
      harness.advance(5_000);
      assert.equal(harness.request("w2", "a").lease?.model, "a");
    });

    it("answers UNAVAILABLE when runner processes keep dying at start, and backs off between spawns", () => {
      // arrange: no runner ever connects; each one dies at start
      const harness = new PlacementHarness([modelConfig("a")]);
      harness.runnersConnect = false;
      harness.start();
      const waiting = harness.request("w1", "a");
      // act
      for (let round = 0; round < 5 && !waiting.error; round++) {
        const spawnedBefore = harness.spawned.length;
        for (const runner of harness.core.status().runners) harness.core.runnerExited(runner.id, 1);
        harness.settle();
        assert.ok(harness.spawned.length <= spawnedBefore + 1, "no new runner within the backoff");
        harness.advance(2_000); // past the backoff
      }
      // assert
      assert.equal(waiting.error?.code, status.UNAVAILABLE);
      assert.match(waiting.error!.message, /exit at start/);
    });

    it("retries on the runner that failed when it is the only replica there can be", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      const runner = harness.runnerOf("a")!;
      harness.release("w1");
      harness.core.request("w2", "a", "lease", Number.POSITIVE_INFINITY, new Set([runner]));
      harness.settle();
      assert.equal(harness.outcome("w2").lease?.runnerId, runner);
    });

    it("never asks to be woken in the past (a pinned model with a ttl, a long wait)", () => {
      const harness = new PlacementHarness([modelConfig("a", { pin: true, ttlMs: 1_000 }), modelConfig("b")], { fairnessMs: 1_000 });
      harness.start();
      harness.advance(10_000);
      const wake = harness.core.nextWakeMs();
      assert.ok(wake === undefined || wake > harness.now, `asked to wake at ${wake} with now ${harness.now}`);
    });
  });

  describe("idle TTL", () => {
    it("unloads a model idle for its ttl, and not before", () => {
      const harness = new PlacementHarness([modelConfig("a", { ttlMs: 300_000 })]).start();
      harness.request("w1", "a");
      harness.release("w1");
      harness.advance(299_000);
      assert.deepEqual(harness.kinds("unloaded"), []);
      harness.advance(1_000);
      assert.deepEqual(harness.kinds("unloaded"), ["a"]);
      assert.equal(harness.events.find((event) => event.kind === "unloaded")!.reason, "idle ttl");
    });
  });

  describe("runner crashes", () => {
    it("drops the crashed runner's memory and leases, and reloads on the next request", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      const runner = harness.runnerOf("a")!;
      harness.crash(runner);
      assert.equal(harness.core.status().runners.some((entry) => entry.id === runner), false);
      assert.equal(harness.core.status().residentBytes, 0);
      harness.advance(1_000);
      const again = harness.request("w2", "a");
      assert.ok(again.lease && again.lease.runnerId !== runner);
    });

    it("gives up with UNAVAILABLE after runners crash three times loading a model", () => {
      const harness = threeModels();
      harness.autoFinishLoads = false;
      const waiting = harness.request("w1", "a");
      for (let attempt = 0; attempt < 3; attempt++) {
        const loading = harness.loadingRunner();
        assert.ok(loading, `attempt ${attempt} is loading`);
        harness.crash(loading.id);
        harness.advance(2_000); // past the spawn backoff
      }
      assert.equal(waiting.error?.code, status.UNAVAILABLE);
    });

    it("fails the waiters of a model whose file cannot be loaded, with the reason", () => {
      const harness = threeModels();
      harness.autoFinishLoads = false;
      const waiting = harness.request("w1", "a");
      const loading = harness.loadingRunner()!;
      harness.core.runnerLoadFailed(loading.id, "a", "invalid magic");
      harness.settle();
      assert.equal(waiting.error?.code, status.FAILED_PRECONDITION);
      assert.match(waiting.error!.message, /failed to load: invalid magic/);
    });
  });

  describe("admin", () => {
    it("forgets an unload asked while the only replica was loading once that load fails: the next load stays", () => {
      const harness = threeModels();
      harness.autoFinishLoads = false;
      harness.request("w1", "a");
      harness.core.unload("a");
      harness.core.runnerLoadFailed(harness.loadingRunner()!.id, "a", "invalid magic");
      harness.settle();
      // act
      harness.autoFinishLoads = true;
      const again = harness.request("w2", "a");
      harness.release("w2");
      // assert
      assert.equal(again.lease?.model, "a");
      assert.deepEqual(harness.kinds("unloaded"), [], "not unloaded as if an admin had asked");
    });

    it("unloads a model only after its streams end", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      harness.core.unload("a");
      harness.settle();
      assert.deepEqual(harness.kinds("unloaded"), []);
      harness.release("w1");
      assert.deepEqual(harness.kinds("unloaded"), ["a"]);
    });

    it("keeps a model that was unloaded by an admin resident when it is requested again", () => {
      const harness = threeModels();
      harness.request("w1", "a");
      harness.release("w1");
      harness.core.unload("a");
      harness.settle();
      harness.request("w2", "a");
      harness.release("w2");
      harness.settle();
      assert.deepEqual(harness.kinds("unloaded"), ["a"]);
      assert.equal(harness.core.status().models.find((entry) => entry.info?.name === "a")?.info?.state, ModelState.MODEL_STATE_RESIDENT);
    });

    it("preloads models marked preload at start", () => {
      const harness = new PlacementHarness([modelConfig("a", { preload: true }), modelConfig("b")]).start();
      assert.deepEqual(harness.kinds("loaded"), ["a"]);
    });
  });

  describe("shared runners", () => {
    it("hosts several shared models in one runner, and gives an isolation: process model its own", () => {
      const harness = new PlacementHarness([modelConfig("a"), modelConfig("b"), modelConfig("c"), modelConfig("solo", { isolation: "process" })], { budgetBytes: 1000 * MiB });
      for (const name of ["a", "b", "c", "solo"]) harness.sizes.set(name, 100 * MiB);
      harness.start();
      for (const name of ["a", "b", "c", "solo"]) harness.request(`w-${name}`, name);
      const runners = harness.core.status().runners;
      const shared = runners.filter((runner) => !runner.isolated && runner.models.length > 0);
      assert.equal(shared.length, 1, "one shared runner");
      assert.deepEqual(shared[0]!.models.map((model) => model.name).sort(), ["a", "b", "c"]);
      const isolated = runners.filter((runner) => runner.isolated);
      assert.deepEqual(isolated.map((runner) => runner.models.map((model) => model.name)), [["solo"]]);
      // the budget is charged each runner's own memory once, plus each model
      assert.equal(harness.committed(), 2 * 50 * MiB + 4 * 100 * MiB);
    });

    it("takes every model of a crashed shared runner out at once; their next requests reload them", () => {
      const harness = new PlacementHarness([modelConfig("a"), modelConfig("b")], { budgetBytes: 1000 * MiB });
      harness.start();
      harness.request("w1", "a");
      harness.request("w2", "b");
      const runner = harness.runnerOf("a")!;
      assert.equal(harness.runnerOf("b"), runner);
      // act
      harness.crash(runner);
      // assert
      const exited = harness.records.find((event) => event.kind === "runner_exited");
      assert.deepEqual(exited?.kind === "runner_exited" && exited.models.sort(), ["a", "b"]);
      assert.equal(harness.core.status().residentBytes, 0);
      assert.equal(harness.committed(), harness.core.status().runners.length * 50 * MiB, "only runners' own memory is left");
      harness.advance(1_000);
      assert.ok(harness.request("w3", "a").lease);
      assert.ok(harness.request("w4", "b").lease);
      assert.equal(harness.runnerOf("a"), harness.runnerOf("b"));
    });

    it("when placement stops, the runners it then ends are reported stopped, not crashed, and nothing is respawned", () => {
      const harness = new PlacementHarness([modelConfig("a")], { budgetBytes: 1000 * MiB });
      harness.start();
      harness.request("w1", "a");
      const runner = harness.runnerOf("a")!;
      const spawnedBefore = harness.spawned.length;
      // act: placement shuts down, then its runner's control stream closes
      harness.core.stop();
      harness.crash(runner);
      // assert
      const exited = harness.records.find((event) => event.kind === "runner_exited");
      assert.deepEqual(exited?.kind === "runner_exited" && [exited.expected, exited.models], [true, ["a"]]);
      assert.equal(harness.events.find((event) => event.kind === "runner_exited")?.reason, "stopped");
      assert.equal(harness.spawned.length, spawnedBefore);
    });

    /** a and b share a runner; d evicts a, which leaves 80 MiB of heap behind in that runner. */
    function retainingRunner() {
      const harness = new PlacementHarness(["a", "b", "c", "d"].map((name) => modelConfig(name)), { budgetBytes: 400 * MiB });
      for (const [name, size] of [["a", 150], ["b", 100], ["c", 280], ["d", 150]] as const) harness.sizes.set(name, size * MiB);
      harness.retainedAfterUnload = 80 * MiB;
      harness.start();
      for (const name of ["a", "b", "d"]) {
        harness.request(`w-${name}`, name);
        harness.advance(10).release(`w-${name}`);
      }
      harness.retainedAfterUnload = 0;
      return harness;
    }

    it("charges a shared runner what it kept after an unload, and recycles it between requests when that memory is needed", () => {
      const harness = retainingRunner();
      assert.equal(harness.core.status().runners[0]!.baseBytes, 130 * MiB, "the ledger charges the 80 MiB the runner kept");
      // act: c (280 MiB) fits in a fresh runner (50 + 280), not in this one (130 + 280)
      const c = harness.request("w-c", "c");
      // assert: the runner was recycled (b and d went with it, no stream cut), c is served
      assert.equal(c.lease?.model, "c");
      const unloaded = harness.records.flatMap((event) => (event.kind === "unloaded" ? [`${event.model}:${event.reason.cause}`] : []));
      assert.deepEqual(unloaded.sort(), ["a:evicted", "b:runner_recycled", "d:runner_recycled"]);
      assert.ok(harness.committed() <= 400 * MiB);
      // b comes back on its next request
      harness.release("w-c");
      assert.equal(harness.request("w-b2", "b").lease?.model, "b");
    });

    it("never recycles a runner with a stream in flight", () => {
      const harness = retainingRunner();
      harness.request("w-b", "b"); // b keeps streaming
      const c = harness.request("w-c", "c");
      assert.equal(c.lease, undefined, "c waits");
      assert.deepEqual(harness.kinds("runner_exited"), []);
      harness.release("w-b");
      assert.equal(harness.outcome("w-c").lease?.model, "c", "c is served once b's stream ended");
    });
  });
});
