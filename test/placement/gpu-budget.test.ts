// Placement with a GPU, from injected readings (no GPU is needed): on a box with a discrete GPU,
// `gpu_budget` is a second budget, for VRAM, beside `budget` for host memory; on a Jetson (CPU
// and GPU share the DRAM) there is one budget and a model's GPU bytes are charged once.
// The budgets are sized from fake memory sources as placement-server.ts sizes them; the fake
// runners report what a real runner measures (services/runner/load-measurement.ts).
import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { ConfigError } from "../../common/config/config-error.js";
import { resolveBudget } from "../../common/system/resolve-budget.js";
import { resolveGpuBudget } from "../../common/system/resolve-gpu-budget.js";
import { measureLoad } from "../../services/runner/load-measurement.js";
import { FakeMemorySource } from "../support/fake-memory-source.js";
import { MiB, modelConfig, PlacementHarness, RUNNER_BASE } from "./placement-harness.js";

const GiB = 1024 * MiB;

/**
 * A box with 500 MiB of host memory for models and a discrete GPU with 400 MiB free, of which
 * gpu_budget: 75% gives 300 MiB. "cpu-only" and "cpu-two" run on the CPU (250 MiB, no VRAM); "gpu-a" and
 * "gpu-b" offload every layer (200 MiB of VRAM and 30 MiB of host memory each).
 */
function discreteGpuBox() {
  const box = new FakeMemorySource({ physicalBytes: 64 * GiB, availableBytes: 56 * GiB, unifiedMemory: false }, { totalBytes: 512 * MiB, freeBytes: 400 * MiB });
  const gpuBudgetBytes = resolveGpuBudget({ kind: "fraction", fraction: 0.75 }, box.read(), box.readGpu());
  const models = [modelConfig("cpu-only"), modelConfig("cpu-two"), modelConfig("gpu-a", { gpu: "auto", gpuLayers: "auto" }), modelConfig("gpu-b", { gpu: "auto", gpuLayers: 24 }), modelConfig("too-big", { gpu: "auto", gpuLayers: "auto" })];
  const harness = new PlacementHarness(models, { budgetBytes: 500 * MiB, gpuBudgetBytes });
  harness.sizes.set("cpu-only", 250 * MiB);
  harness.sizes.set("cpu-two", 250 * MiB);
  for (const name of ["gpu-a", "gpu-b"]) {
    harness.sizes.set(name, 230 * MiB);
    harness.gpuSizes.set(name, 200 * MiB);
  }
  harness.sizes.set("too-big", 430 * MiB);
  harness.gpuSizes.set("too-big", 400 * MiB);
  return harness.start();
}

/** Uses a model once: a request, its lease, then the release a little later. */
function use(harness: PlacementHarness, waiterId: string, model: string) {
  const outcome = harness.request(waiterId, model);
  assert.equal(outcome.lease?.model, model, `${waiterId} for ${model} served (${outcome.error?.message ?? "no error"})`);
  harness.advance(10).release(waiterId);
}

describe("placement with a GPU (injected readings; no GPU needed)", () => {
  describe("a discrete GPU with gpu_budget: VRAM and RAM are budgeted apart", () => {
    it("sizes gpu_budget: 75% from the GPU memory free at start", () => {
      const harness = discreteGpuBox();
      assert.equal(harness.core.status().gpuBudgetBytes, 300 * MiB);
    });

    it("charges a model's VRAM to gpu_budget and only its host part to budget", () => {
      // arrange
      const harness = discreteGpuBox();
      // act
      use(harness, "w1", "gpu-a");
      // assert
      assert.equal(harness.committedGpu(), 200 * MiB);
      assert.equal(harness.committed(), RUNNER_BASE + 30 * MiB);
      const status = harness.core.status();
      assert.equal(status.gpuResidentBytes, 200 * MiB);
      assert.equal(status.residentBytes, 30 * MiB);
      const hosted = status.runners.flatMap((runner) => runner.models).find((model) => model.name === "gpu-a")!;
      assert.deepEqual({ bytes: hosted.bytes, gpuBytes: hosted.gpuBytes, backend: hosted.backend }, { bytes: 30 * MiB, gpuBytes: 200 * MiB, backend: "cuda" });
    });

    it("asks the runner for an estimate with the model's gpu_layers, so that it splits host and GPU memory as the load will", () => {
      const harness = discreteGpuBox();
      use(harness, "w1", "gpu-a");
      use(harness, "w2", "gpu-b");
      const estimates = harness.commands.flatMap(({ command }) => (command.command?.$case === "estimate" ? [command.command.value] : []));
      assert.deepEqual(
        estimates.map((estimate) => [estimate.requestId, estimate.gpuLayers]),
        [
          ["gpu-a", -1],
          ["gpu-b", 24],
        ],
      );
    });

    it("VRAM full, RAM free: evicts the model holding VRAM, not the older, bigger CPU-only model", () => {
      // arrange: cpu-only used first (least recently used), then gpu-a; 100 MiB of VRAM left
      const harness = discreteGpuBox();
      use(harness, "w1", "cpu-only");
      use(harness, "w2", "gpu-a");
      // act: gpu-b needs 200 MiB of VRAM; host memory has room for it
      use(harness, "w3", "gpu-b");
      // assert
      assert.deepEqual(harness.kinds("evicted"), ["gpu-a"]);
      assert.ok(harness.runnerOf("cpu-only"), "the CPU-only model stays resident");
      assert.equal(harness.committedGpu(), 200 * MiB);
    });

    it("RAM full, VRAM free: evicts the CPU-only model, and spares the older GPU model that frees too little host memory", () => {
      // arrange: gpu-a least recently used (30 MiB of host memory), then cpu-only (250 MiB)
      const harness = discreteGpuBox();
      use(harness, "w1", "gpu-a");
      use(harness, "w2", "cpu-only");
      // act: cpu-two needs 250 MiB of host memory, 80 MiB more than is free
      use(harness, "w3", "cpu-two");
      // assert
      assert.deepEqual(harness.kinds("evicted"), ["cpu-only"]);
      assert.ok(harness.runnerOf("gpu-a"), "the GPU model stays resident");
    });

    it("keeps committed host bytes within budget and GPU bytes within gpu_budget at every step", () => {
      const harness = discreteGpuBox();
      const order = ["gpu-a", "cpu-only", "gpu-b", "gpu-a", "cpu-only", "gpu-b", "gpu-b", "gpu-a"];
      order.forEach((model, index) => {
        use(harness, `w${index}`, model);
        assert.ok(harness.committed() <= 500 * MiB, `step ${index}: ${harness.committed() / MiB} MiB of host memory`);
        assert.ok(harness.committedGpu() <= 300 * MiB, `step ${index}: ${harness.committedGpu() / MiB} MiB of VRAM`);
      });
      const evicted = harness.kinds("evicted");
      assert.ok(evicted.length >= 3, `VRAM was short again and again: ${evicted.join(", ")}`);
      assert.ok(evicted.every((model) => model.startsWith("gpu-")), "only VRAM was short: only GPU models were evicted");
    });

    it("refuses a model whose VRAM alone exceeds gpu_budget, telling the user to lower gpu_layers or raise gpu_budget", () => {
      const harness = discreteGpuBox();
      const refused = harness.request("w1", "too-big");
      assert.equal(refused.error?.code, status.FAILED_PRECONDITION);
      assert.match(refused.error!.message, /model "too-big" needs about 400(\.0)? MiB of GPU memory with gpu_layers: auto \(all layers\) but gpu_budget is 300(\.0)? MiB; lower gpu_layers on the model .* or raise gpu_budget/);
      // Known from then on: the next request is refused at once, before any estimate.
      assert.equal(harness.request("w2", "too-big").error?.code, status.FAILED_PRECONDITION);
    });

    it("refuses a model that fits the GPU only if a pinned model left it", () => {
      // arrange: gpu-a pinned holds 200 of the 300 MiB
      const harness = discreteGpuBox();
      use(harness, "w1", "gpu-a");
      harness.core.pin("gpu-a", true);
      // act
      const refused = harness.request("w2", "gpu-b");
      // assert
      assert.equal(refused.error?.code, status.FAILED_PRECONDITION);
      assert.match(refused.error!.message, /needs about 200(\.0)? MiB of GPU memory but pinned models hold 200(\.0)? MiB of the 300(\.0)? MiB gpu_budget; unpin a model .*lower gpu_layers, or raise gpu_budget/);
      assert.ok(harness.runnerOf("gpu-a"));
    });

    it("evicts an idle GPU model at once when a load measures more VRAM than estimated and gpu_budget is exceeded", () => {
      // arrange: gpu-a resident; gpu-b estimated at 80 MiB of VRAM, so it fits beside it
      const harness = discreteGpuBox();
      use(harness, "w1", "gpu-a");
      harness.gpuSizes.set("gpu-b", 80 * MiB);
      harness.sizes.set("gpu-b", 110 * MiB);
      harness.autoFinishLoads = false;
      harness.request("w2", "gpu-b");
      // act: the load measures 200 MiB of VRAM
      harness.gpuSizes.set("gpu-b", 200 * MiB);
      harness.sizes.set("gpu-b", 230 * MiB);
      harness.finishLoads();
      // assert
      const overBudget = harness.events.filter((event) => event.kind === "unloading" && /over/.test(event.reason));
      assert.deepEqual(overBudget.map((event) => event.model), ["gpu-a"]);
      assert.match(overBudget[0]!.reason, /^over gpu_budget by 100(\.0)? MiB after a load measured more than estimated$/);
      assert.equal(harness.outcome("w2").lease?.model, "gpu-b");
      assert.ok(harness.committedGpu() <= 300 * MiB);
    });

    it("waits, without evicting a CPU-only model, while the VRAM is held by a model with a stream in flight", () => {
      // arrange: gpu-a holds a lease; cpu-only is idle
      const harness = discreteGpuBox();
      use(harness, "w1", "cpu-only");
      harness.request("w2", "gpu-a");
      // act
      const waiting = harness.request("w3", "gpu-b");
      // assert
      assert.equal(waiting.lease, undefined);
      assert.deepEqual(harness.kinds("evicted"), []);
      harness.release("w2");
      assert.deepEqual(harness.kinds("evicted"), ["gpu-a"]);
      assert.equal(harness.outcome("w3").lease?.model, "gpu-b");
    });

    it("after a placement restart, adopts a runner's models with their GPU bytes from its re-registration", () => {
      // arrange: a fresh placement (nothing learned), and a runner that kept gpu-a loaded
      const harness = discreteGpuBox();
      // act
      harness.core.runnerConnected({ runnerId: "kept", pid: 7, address: "fake:kept", rssBytes: RUNNER_BASE + 30 * MiB, hosted: [{ model: "gpu-a", measuredBytes: 230 * MiB, gpuBytes: 200 * MiB }], authProof: "" });
      harness.settle();
      // assert
      assert.equal(harness.committedGpu(), 200 * MiB);
      assert.equal(harness.core.memory.modelBytes("gpu-a"), 30 * MiB);
      // Its RSS holds the model's host part only: the rest is the runner's own.
      assert.equal(harness.core.status().runners.find((runner) => runner.id === "kept")?.baseBytes, RUNNER_BASE);
    });
  });

  describe("without gpu_budget: one budget, as before", () => {
    it("charges a model's whole footprint, GPU part included, to budget", () => {
      const box = new FakeMemorySource({ physicalBytes: 64 * GiB, availableBytes: 56 * GiB, unifiedMemory: false }, { totalBytes: 512 * MiB, freeBytes: 400 * MiB });
      const harness = new PlacementHarness([modelConfig("gpu-a", { gpu: "auto", gpuLayers: "auto" })], { gpuBudgetBytes: resolveGpuBudget(undefined, box.read(), box.readGpu()) });
      harness.sizes.set("gpu-a", 230 * MiB);
      harness.gpuSizes.set("gpu-a", 200 * MiB);
      harness.start();
      use(harness, "w1", "gpu-a");
      assert.equal(harness.committed(), RUNNER_BASE + 230 * MiB);
      assert.equal(harness.committedGpu(), 0);
      assert.equal(harness.core.status().gpuBudgetBytes, 0);
    });
  });

  describe("a Jetson (unified memory): one budget, nothing counted twice", () => {
    // An Orin Nano: 7.3 GiB of DRAM shared by CPU and GPU.
    const jetson = new FakeMemorySource({ physicalBytes: 7620176 * 1024, availableBytes: 6 * GiB, unifiedMemory: true });

    it("refuses gpu_budget: budget already covers the GPU", () => {
      assert.throws(() => resolveGpuBudget({ kind: "bytes", bytes: 2 * GiB }, jetson.read(), undefined), ConfigError);
      assert.equal(resolveGpuBudget(undefined, jetson.read(), undefined), undefined);
    });

    it("charges each model its RSS growth plus its GPU allocations once, so two models fit that would not if counted twice", () => {
      // arrange: a small unified box, budget: 75% of its physical memory
      const box = new FakeMemorySource({ physicalBytes: 640 * MiB, availableBytes: 600 * MiB, unifiedMemory: true });
      const budgetBytes = resolveBudget({ kind: "fraction", fraction: 0.75 }, box.read());
      assert.equal(budgetBytes, 480 * MiB);
      // What a runner measures for each load on the Jetson: 60 MiB of RSS growth (anonymous),
      // and the unified pool's use grows by that plus 150 MiB of nvmap (GPU) allocations.
      const measured = measureLoad(
        { rssBytes: RUNNER_BASE, anonymousRssBytes: 40 * MiB, deviceUsedBytes: 2 * GiB },
        { rssBytes: RUNNER_BASE + 60 * MiB, anonymousRssBytes: 100 * MiB, deviceUsedBytes: 2 * GiB + 210 * MiB },
        true,
      );
      assert.deepEqual(measured, { hostBytes: 60 * MiB, deviceBytes: 150 * MiB, chargedBytes: 210 * MiB, gpuChargedBytes: 0 });
      const harness = new PlacementHarness([modelConfig("a", { gpu: "auto", gpuLayers: "auto" }), modelConfig("b", { gpu: "auto", gpuLayers: "auto" })], {
        budgetBytes,
        gpuBudgetBytes: resolveGpuBudget(undefined, box.read(), undefined),
        physicalBytes: box.read().physicalBytes,
      });
      for (const name of ["a", "b"]) {
        // As runner.ts reports it: measured_bytes = charged + gpu-charged; gpu_bytes = the device part.
        harness.sizes.set(name, measured.chargedBytes + measured.gpuChargedBytes);
        harness.gpuSizes.set(name, measured.deviceBytes);
      }
      harness.start();
      // act
      use(harness, "w1", "a");
      use(harness, "w2", "b");
      // assert: 50 + 210 + 210 = 470 MiB of 480; counting the 150 MiB twice would have been 770
      assert.deepEqual(harness.kinds("evicted"), []);
      assert.equal(harness.committed(), RUNNER_BASE + 2 * 210 * MiB);
      assert.equal(harness.committedGpu(), 0);
      const status = harness.core.status();
      assert.deepEqual({ gpuBudgetBytes: status.gpuBudgetBytes, gpuResidentBytes: status.gpuResidentBytes, residentBytes: status.residentBytes }, { gpuBudgetBytes: 0, gpuResidentBytes: 0, residentBytes: 420 * MiB });
    });
  });
});
