import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { LearnedState } from "../../services/placement/learned-state.js";
import { PlacementCore } from "../../services/placement/placement-core.js";
import type { RunnerCommand } from "../../gen/modelswap/v1/runner.js";
import type { PlacementEffects, PlacementSettings } from "../../services/placement/placement-types.js";
import { MiB, modelConfig } from "./placement-harness.js";

const settings: PlacementSettings = {
  budgetBytes: 1024 * MiB, policyName: "lru", spareRunners: 0, queueMax: 4, queueTimeoutMs: 1000, minResidencyMs: 0,
  fairnessMs: 1000, prefetch: false, maxDownloads: 2, runnerBaseBytesGuess: 50 * MiB, maxLoadAttempts: 3, physicalBytes: 16 * 1024 * MiB,
};

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
      new PlacementCore([{ config: modelConfig("a"), fileBytes, fileMtimeMs: 5, learned }], settings, { now: () => 0 }, new Proxy({}, { get: () => () => undefined }) as never);
    // act + assert: the same file -> the measurement is used; a changed file -> start from scratch
    assert.equal(coreWith(1000).listModels()[0]!.measuredBytes, 123 * MiB);
    assert.equal(coreWith(2000).listModels()[0]!.measuredBytes, 0);
  });

  it("keeps the GPU part of what it learned; with gpu_budget, a figure saved without one is learned again", () => {
    // arrange: one state file from a version that split host and GPU memory, one from before
    const file = path.join(directory, "gpu.json");
    const state = new LearnedState(file);
    state.set("split", { measuredBytes: 230 * MiB, measuredGpuBytes: 200 * MiB, estimatedBytes: 240 * MiB, estimatedGpuBytes: 210 * MiB, fileBytes: 1000, fileMtimeMs: 5 });
    state.set("old", { measuredBytes: 230 * MiB, estimatedBytes: 240 * MiB, fileBytes: 1000, fileMtimeMs: 5 });
    const catalog = ["split", "old"].map((name) => ({ config: modelConfig(name, { gpu: "auto", gpuLayers: "auto" }), fileBytes: 1000, fileMtimeMs: 5, learned: new LearnedState(file).get(name) }));
    const effects = new Proxy({}, { get: () => () => undefined }) as never;
    // act
    const discrete = new PlacementCore(catalog, { ...settings, gpuBudgetBytes: 300 * MiB }, { now: () => 0 }, effects);
    const unbudgeted = new PlacementCore(catalog, settings, { now: () => 0 }, effects);
    // assert: with gpu_budget, 30 MiB of host memory and 200 MiB of VRAM; the old figure is unknown again
    const split = discrete.models.get("split")!;
    assert.deepEqual([discrete.memory.accountedBytes(split), discrete.memory.accountedGpuBytes(split)], [30 * MiB, 200 * MiB]);
    const old = discrete.models.get("old")!;
    assert.deepEqual([old.measuredBytes, old.estimatedBytes], [undefined, undefined]);
    // without it, each whole figure is charged to budget, the old one as it always was
    assert.deepEqual([unbudgeted.memory.modelBytes("split"), unbudgeted.memory.modelBytes("old"), unbudgeted.memory.modelGpuBytes("split")], [230 * MiB, 230 * MiB, 0]);
  });

  it("keeps a runner's absurd figures out of the ledger and the state file, and out of what it reads back", () => {
    // arrange: placement with a state file; one runner connected (it holds the runner key, but reports nonsense)
    const file = path.join(directory, "poisoned.json");
    const state = new LearnedState(file);
    const commands: RunnerCommand[] = [];
    const rejected: string[] = [];
    const errors: string[] = [];
    const effects = new Proxy({} as PlacementEffects, {
      get: (_target, name) => {
        if (name === "learned") return (model: string, facts: Parameters<PlacementEffects["learned"]>[1]) => state.set(model, facts);
        if (name === "sendToRunner") return (_runner: string, command: RunnerCommand) => commands.push(command);
        if (name === "reportRejected") return (runnerId: string, report: string) => rejected.push(`${runnerId} ${report}`);
        if (name === "reject") return (_waiter: string, error: Error) => errors.push(error.message);
        return () => undefined;
      },
    });
    const core = new PlacementCore([{ config: modelConfig("a"), fileBytes: 10 * MiB, fileMtimeMs: 5 }], settings, { now: () => 0 }, effects);
    core.runnerConnected({ runnerId: "r1", pid: 1, address: "127.0.0.1:1", rssBytes: 2 ** 50, hosted: [], authProof: "" });
    const saved = () => JSON.parse(readFileSync(file, "utf8")) as Record<string, Record<string, unknown>>;

    // act 1: an estimate of 1 PiB
    core.request("w1", "a", "load", Number.POSITIVE_INFINITY);
    assert.equal(commands.at(-1)?.command?.$case, "estimate");
    core.runnerEstimate("r1", "a", 2 ** 50, "");
    // assert 1: refused, the waiter told why, nothing saved; an estimate nobody asked for is ignored
    assert.match(errors[0]!, /the runner's estimate is not plausible \(estimated 1125899906842624 bytes/);
    assert.ok(!existsSync(file));
    core.runnerEstimate("r1", "a", 20 * MiB, "");
    assert.equal(core.listModels()[0]!.estimatedBytes, 0);

    // act 2: a plausible estimate, then a load that "measured" 1 PiB in NaN ms with a 1 PiB RSS
    core.request("w2", "a", "load", Number.POSITIVE_INFINITY);
    core.runnerEstimate("r1", "a", 20 * MiB, "");
    assert.equal(commands.at(-1)?.command?.$case, "load");
    core.runnerLoaded("r1", { model: "a", measuredBytes: 2 ** 50, rssBytes: 2 ** 50, loadMs: Number.NaN, modelLoadMs: 1, contextMs: 1, warmUpMs: 1, fileBytes: 10 * MiB, gpuBytes: 0, backend: "cpu", gpuLayers: 0 });
    core.runnerHeartbeat("r1", 2 ** 50);

    // assert 2: the estimate is what the ledger charges and what is saved; the absurd figures are nowhere
    assert.equal(core.memory.modelBytes("a"), 20 * MiB);
    assert.equal(core.status().runners[0]!.rssBytes, 0, "no RSS report was plausible: none is shown");
    assert.deepEqual(saved().a, { estimatedBytes: 20 * MiB, estimatedGpuBytes: 0, fileBytes: 10 * MiB, fileMtimeMs: 5 });
    assert.deepEqual(rejected, ["r1 ready.rss_bytes", "r1 estimate.bytes", "r1 loaded.rss_bytes", "r1 loaded.measured_bytes", "r1 loaded.load_ms", "r1 heartbeat.rss_bytes"]);

    // act 3 + assert 3: a state file poisoned by hand (or by an older version) is read back under the same checks
    writeFileSync(file, JSON.stringify({ a: { measuredBytes: 2 ** 50, estimatedBytes: -1, loadMs: 1e300, fileBytes: 10 * MiB, fileMtimeMs: 5 } }));
    const reread = new PlacementCore([{ config: modelConfig("a"), fileBytes: 10 * MiB, fileMtimeMs: 5, learned: new LearnedState(file).get("a") }], settings, { now: () => 0 }, effects);
    const model = reread.models.get("a")!;
    assert.deepEqual([model.measuredBytes, model.estimatedBytes, model.reloadCostMs], [undefined, undefined, undefined]);
  });
});
