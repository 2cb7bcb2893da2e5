import assert from "node:assert/strict";
import type { BoxModel } from "../../services/cluster/box-record.js";
import { parseBoxRecord } from "../../services/cluster/box-record.js";
import { describeBox, sameRecord } from "../../services/cluster/describe-box.js";
import { MiB, modelConfig, PlacementHarness, RUNNER_BASE } from "../placement/placement-harness.js";

const identity = { box: "orin-1", address: "10.0.0.7:50052", leaseId: "7587" };
const entry = (harness: PlacementHarness, name: string): BoxModel => describeBox(harness.core, identity).models.find((model) => model.name === name)!;

/**
 * Three 200 MiB models under a 500 MiB budget with one 50 MiB runner (lru): two fit.
 * a and b were used, then c evicted a: a is cold with a measured size, b and c resident.
 */
function twoOfThreeResident() {
  const harness = new PlacementHarness([modelConfig("a", { aliases: ["alpha"] }), modelConfig("b"), modelConfig("c")]);
  for (const name of ["a", "b", "c"]) harness.sizes.set(name, 200 * MiB);
  harness.start();
  for (const [waiter, model] of [["w1", "a"], ["w2", "b"], ["w3", "c"]] as const) {
    harness.request(waiter, model);
    harness.advance(10).release(waiter);
  }
  assert.deepEqual(harness.kinds("evicted"), ["a"]);
  return harness;
}

describe("describeBox: the record a box publishes in the registry (placement state machine, fake runners)", () => {
  it("names the box, its budget, free memory and every catalog model with its state", () => {
    const harness = twoOfThreeResident();
    const record = describeBox(harness.core, identity);
    assert.equal(record.box, "orin-1");
    assert.equal(record.address, "10.0.0.7:50052");
    assert.equal(record.leaseId, "7587");
    assert.equal(record.budgetBytes, 500 * MiB);
    assert.equal(record.freeBytes, 500 * MiB - RUNNER_BASE - 400 * MiB);
    assert.equal(record.policy, "lru");
    assert.deepEqual(record.models.map((model) => [model.name, model.state, model.bytes]), [["a", "cold", 200 * MiB], ["b", "resident", 200 * MiB], ["c", "resident", 200 * MiB]]);
    assert.deepEqual(record.models[0]!.aliases, ["alpha"]);
  });

  it("prices a cold model with the box's own eviction policy: the victim and its reload time", () => {
    const harness = twoOfThreeResident();
    // lru: b was used before c, so loading a would evict b, whose load took 200 ms
    assert.deepEqual(entry(harness, "a").load, { kind: "evict", victims: ["b"], reloadCostMs: 200 });
  });

  it("says a cold model fits when free memory holds it, with what is left", () => {
    const harness = new PlacementHarness([modelConfig("a"), modelConfig("b")], { budgetBytes: 1000 * MiB });
    harness.sizes.set("a", 200 * MiB);
    harness.start();
    harness.request("w1", "a");
    harness.advance(10).release("w1");
    harness.core.unload("a");
    harness.settle();
    assert.deepEqual(entry(harness, "a").load, { kind: "fits", freeAfterBytes: 1000 * MiB - RUNNER_BASE - 200 * MiB });
  });

  it("says blocked when nothing can be evicted (pinned models hold the budget)", () => {
    const harness = twoOfThreeResident();
    harness.core.pin("b", true);
    harness.core.pin("c", true);
    const load = entry(harness, "a").load;
    assert.equal(load?.kind, "blocked");
    assert.match(load.kind === "blocked" ? load.reason : "", new RegExp(`pinned ${400 * MiB}\\b`));
  });

  it("counts streams in flight and waiters, and shows a load in progress as loading", () => {
    const harness = twoOfThreeResident();
    harness.request("w4", "b");
    harness.autoFinishLoads = false;
    harness.request("w5", "a");
    const record = describeBox(harness.core, identity);
    assert.equal(record.inFlight, 1);
    assert.equal(entry(harness, "b").inFlight, 1);
    assert.equal(entry(harness, "a").state, "loading");
    assert.equal(entry(harness, "a").queued, 1);
    assert.equal(record.queueDepth, 1);
    assert.equal(entry(harness, "a").load, undefined, "only cold models are priced");
  });

  it("shows a model fetched on first use: its file missing while cold (priced as usual), then downloading as a load in progress", () => {
    const remote = modelConfig("remote", { path: "/models/remote.gguf", source: { kind: "url", uri: "https://models.example/remote.gguf", fileName: "remote.gguf" } });
    const harness = new PlacementHarness([remote, modelConfig("local")], { budgetBytes: 1000 * MiB }, ["remote"]);
    harness.sizes.set("remote", 100 * MiB);
    harness.start();
    assert.deepEqual([entry(harness, "remote").state, entry(harness, "remote").file, entry(harness, "remote").load?.kind], ["cold", "missing", "fits"]);
    assert.equal(entry(harness, "local").file, undefined, "on disk");
    // act: a request starts the download
    harness.request("w1", "remote");
    // assert: peers see it on its way here, and read it back so
    assert.deepEqual([entry(harness, "remote").state, entry(harness, "remote").file], ["loading", "downloading"]);
    const record = describeBox(harness.core, identity);
    assert.deepEqual(parseBoxRecord(JSON.stringify(record)), record);
    const newer = JSON.stringify(record).replace('"file":"downloading"', '"file":"on_a_ship"');
    assert.equal(parseBoxRecord(newer)?.models.find((model) => model.name === "remote")?.file, undefined, "an unknown file state reads as on disk");
  });

  it("reads back from its JSON form, and a changed record is told from an unchanged one", () => {
    const harness = twoOfThreeResident();
    const record = describeBox(harness.core, identity);
    assert.deepEqual(parseBoxRecord(JSON.stringify(record)), record);
    assert.ok(sameRecord(record, { ...record, updatedMs: record.updatedMs + 5000 }), "time alone is no change");
    harness.request("w6", "b");
    assert.ok(!sameRecord(record, describeBox(harness.core, identity)), "a stream in flight is a change");
  });

  it("refuses malformed registry values instead of routing on them", () => {
    const good = JSON.stringify(describeBox(twoOfThreeResident().core, identity));
    for (const bad of ["", "null", "[]", "{}", good.replace('"resident"', '"sleeping"'), good.replace('"budgetBytes":', '"budgetBytes":"x","_":'), "x".repeat(300_000)]) {
      assert.equal(parseBoxRecord(bad), undefined, bad.slice(0, 60));
    }
  });
});
