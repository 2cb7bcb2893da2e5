import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { LearnedState } from "../../services/placement/learned-state.js";
import { PlacementCore } from "../../services/placement/placement-core.js";
import { MiB, modelConfig } from "./placement-harness.js";

describe("learned model facts across placement restarts", () => {
  let directory: string;
  before(() => (directory = mkdtempSync(path.join(tmpdir(), "modelswap-state-"))));
  after(() => rmSync(directory, { recursive: true, force: true }));

  it("keeps measured bytes in the state file, and ignores them when the file changed", () => {
    // arrange: a placement learned a measurement
    const file = path.join(directory, "placement.json");
    new LearnedState(file).set("a", { measuredBytes: 123 * MiB, estimatedBytes: 100 * MiB, loadMs: 250, fileBytes: 1000, fileMtimeMs: 5 });
    const learned = new LearnedState(file).get("a");
    const coreWith = (fileBytes: number) =>
      new PlacementCore([{ config: modelConfig("a"), fileBytes, fileMtimeMs: 5, learned }], {
        budgetBytes: 1024 * MiB, policyName: "lru", spareRunners: 0, queueMax: 4, queueTimeoutMs: 1000, minResidencyMs: 0,
        fairnessMs: 1000, prefetch: false, runnerBaseBytesGuess: 50 * MiB, maxLoadAttempts: 3, physicalBytes: 16 * 1024 * MiB,
      }, { now: () => 0 }, new Proxy({}, { get: () => () => undefined }) as never);
    // act + assert: the same file -> the measurement is used; a changed file -> start from scratch
    assert.equal(coreWith(1000).listModels()[0]!.measuredBytes, 123 * MiB);
    assert.equal(coreWith(2000).listModels()[0]!.measuredBytes, 0);
  });
});
