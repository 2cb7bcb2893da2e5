// Held leases: a router keeps its lease between streams (park / resume) so that a warm
// request skips the Acquire round trip. A parked lease is still a lease: placement asks it
// back (revoke) and waits for its release before the model may leave, before a waiting
// request may be overtaken, and when it idles.
import assert from "node:assert/strict";
import { PARKED_LEASE_MAX_IDLE_MS } from "../../services/placement/placement-plan.js";
import { MiB, modelConfig, PlacementHarness } from "./placement-harness.js";

/** Two 200 MiB models under a 300 MiB budget with one 50 MiB runner: one fits at a time. */
function oneAtATime(overrides: Parameters<typeof modelConfig>[1] = {}) {
  const harness = new PlacementHarness([modelConfig("a", overrides), modelConfig("b", overrides), modelConfig("c", overrides)], { budgetBytes: 300 * MiB });
  for (const name of ["a", "b", "c"]) harness.sizes.set(name, 200 * MiB);
  return harness.start();
}

const statusOf = (harness: PlacementHarness, model: string) => harness.core.listModels().find((info) => info.name === model)!;

describe("held leases (park / resume / revoke)", () => {
  it("keeps a parked lease's model resident and asks nothing back while nobody else waits", () => {
    const harness = oneAtATime();
    harness.request("w1", "a");
    harness.advance(5).park("w1");
    harness.advance(1000).resume("w1");
    harness.advance(5).park("w1");
    assert.deepEqual(harness.revoked, []);
    assert.equal(harness.runnerOf("a") !== undefined, true);
    assert.equal(statusOf(harness, "a").inFlight, 0, "a parked lease is not a stream in flight");
  });

  it("revokes a parked lease when another model needs its memory, and evicts only after the release", () => {
    const harness = oneAtATime();
    harness.request("w1", "a");
    harness.advance(5).park("w1");
    // act
    const b = harness.request("w2", "b");
    // assert: asked back, nothing evicted yet, b waits
    assert.equal(harness.wasRevoked("w1"), true);
    assert.deepEqual(harness.kinds("evicted"), []);
    assert.equal(b.lease, undefined);
    harness.release("w1");
    assert.deepEqual(harness.kinds("evicted"), ["a"]);
    assert.equal(harness.outcome("w2").lease?.model, "b");
  });

  it("lets a stream that resumed before the revoke arrived finish before the model leaves", () => {
    const harness = oneAtATime();
    harness.request("w1", "a");
    harness.advance(5).park("w1");
    harness.request("w2", "b"); // revokes w1's lease
    // the holder had already started a stream (its resume crossed the revoke)
    harness.resume("w1");
    assert.deepEqual(harness.kinds("evicted"), [], "a stream runs on a: it stays");
    harness.advance(50).release("w1");
    assert.deepEqual(harness.kinds("evicted"), ["a"]);
    assert.equal(harness.outcome("w2").lease?.model, "b");
  });

  it("gives a parked slot to a request waiting for it (one sequence, two callers)", () => {
    const harness = oneAtATime({ sequences: 1 });
    harness.request("w1", "a");
    harness.park("w1");
    const second = harness.request("w2", "a");
    assert.equal(second.lease, undefined, "the only sequence is held");
    assert.equal(harness.wasRevoked("w1"), true);
    harness.release("w1");
    assert.equal(harness.outcome("w2").lease?.model, "a");
  });

  it("while a request waits for a busy resident model, asks back only that model's parked leases: another model's stay warm", () => {
    const harness = new PlacementHarness([modelConfig("a", { sequences: 1 }), modelConfig("b")], { budgetBytes: 1000 * MiB });
    harness.start();
    harness.request("w1", "a");
    harness.request("w2", "b");
    harness.park("w2");
    harness.park("w1");
    // act: a second caller for a, whose only sequence w1 holds
    const waiting = harness.request("w3", "a");
    // assert
    assert.equal(waiting.lease, undefined);
    assert.equal(harness.wasRevoked("w1"), true, "a's slot is wanted");
    assert.equal(harness.wasRevoked("w2"), false, "b's memory and slots are not");
    harness.release("w1");
    assert.equal(harness.outcome("w3").lease?.model, "a");
    harness.resume("w2");
    assert.equal(harness.wasRevoked("w2"), false);
  });

  it("asks back a lease parked too long, and a parked lease of a model idle past its ttl, which then unloads", () => {
    const harness = oneAtATime({ ttlMs: 60_000 });
    harness.request("w1", "a");
    harness.park("w1");
    harness.advance(PARKED_LEASE_MAX_IDLE_MS - 1);
    assert.deepEqual(harness.revoked, []);
    harness.advance(1);
    assert.equal(harness.wasRevoked("w1"), true);
    // until the release arrives, placement sets no timer for a moment already passed (it would fire at once, again and again)
    assert.ok((harness.core.nextWakeMs() ?? Number.POSITIVE_INFINITY) > harness.now, `next wake ${harness.core.nextWakeMs()} at ${harness.now}`);
    harness.release("w1");
    assert.deepEqual(harness.kinds("unloaded"), [], "released, but not idle for its ttl yet");
    harness.advance(60_000 - PARKED_LEASE_MAX_IDLE_MS);
    assert.deepEqual(harness.kinds("unloaded"), ["a"]);
  });

  it("counts a resumed stream as a use: LRU evicts the model used longer ago", () => {
    const harness = new PlacementHarness([modelConfig("a"), modelConfig("b"), modelConfig("c")], { budgetBytes: 500 * MiB });
    for (const name of ["a", "b", "c"]) harness.sizes.set(name, 200 * MiB);
    harness.start();
    harness.request("w1", "a");
    harness.advance(10).park("w1");
    harness.request("w2", "b");
    harness.advance(10).release("w2");
    harness.advance(10).resume("w1"); // a used again, after b
    harness.advance(10).park("w1");
    // act
    harness.request("w3", "c");
    harness.release("w1"); // revoked because c waits
    // assert
    assert.deepEqual(harness.kinds("evicted"), ["b"]);
    assert.equal(harness.outcome("w3").lease?.model, "c");
  });

  it("tells the holder when the runner of its parked lease dies", () => {
    const harness = oneAtATime();
    harness.request("w1", "a");
    harness.park("w1");
    harness.crash(harness.runnerOf("a")!);
    assert.equal(harness.wasRevoked("w1"), true);
  });

  it("revokes parked leases of a model an admin unloads, then unloads it", () => {
    const harness = oneAtATime();
    harness.request("w1", "a");
    harness.park("w1");
    harness.core.unload("a");
    harness.settle();
    assert.equal(harness.wasRevoked("w1"), true);
    assert.deepEqual(harness.kinds("unloaded"), []);
    harness.release("w1");
    assert.deepEqual(harness.kinds("unloaded"), ["a"]);
  });
});

describe("warm-up of a load", () => {
  const warmUps = (harness: PlacementHarness) =>
    harness.commands.filter((entry) => entry.command.command?.$case === "load").map((entry) => (entry.command.command as { value: { model: string; warmUp: boolean } }).value);

  it("is skipped when a request waits for the model (its prompt warms it up), and done for a preload", () => {
    const harness = new PlacementHarness([modelConfig("a"), modelConfig("b", { preload: true })]);
    harness.start();
    harness.request("w1", "a");
    assert.deepEqual(
      warmUps(harness).map(({ model, warmUp }) => ({ model, warmUp })),
      [
        { model: "b", warmUp: true },
        { model: "a", warmUp: false },
      ],
    );
  });
});
