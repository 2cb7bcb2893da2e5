import assert from "node:assert/strict";
import { createLogger } from "../../common/logger.js";
import type { RunnerEvent } from "../../gen/modelswap/v1/runner.js";
import type { Engine, LoadedModel, LoadSpec } from "../../services/runner/engine.js";
import { Runner } from "../../services/runner/runner.js";
import { storiesModel } from "../support/paths.js";

const MB = 1_000_000;

/** An engine whose load "took" `deviceBytes` on the GPU, with the runner's memory readings scripted. */
function runnerWith(readings: { rssBytes: number; anonymousRssBytes: number }[], deviceBytes: number, unifiedMemory: boolean) {
  const events: RunnerEvent[] = [];
  let settle!: () => void;
  const loadedEvent = new Promise<void>((resolve) => (settle = resolve));
  const engine: Engine = {
    init: async () => undefined,
    estimate: async () => ({ bytes: 0, gpuBytes: 0 }),
    load: async (spec: LoadSpec): Promise<LoadedModel> => ({
      spec,
      timings: { modelLoadMs: 1, contextMs: 1, warmUpMs: 1 },
      deviceBytes,
      weightsMapped: false,
      gpuLayers: 24,
      backend: "cuda",
      generate: async () => ({ finishReason: "stop", promptTokens: 0, cachedPromptTokens: 0, completionTokens: 0, firstTokenMs: 0, generateMs: 0 }),
      dispose: async () => undefined,
    }),
  };
  const runner = new Runner({
    runnerId: "r1",
    dataAddress: () => "127.0.0.1:1",
    engine,
    send: (event) => {
      events.push(event);
      if (event.event?.$case === "loaded") settle();
    },
    exit: () => undefined,
    logger: createLogger("test", {}, { quiet: true }),
    unifiedMemory,
    memory: () => readings.shift()!,
  });
  runner.handle({ command: { $case: "load", value: { model: "m", path: storiesModel, contextSize: 512, sequences: 1, threads: 1, gpu: "cuda", warmUp: false, useMmap: false, gpuLayers: -1 } } });
  return loadedEvent.then(() => {
    const loaded = events.find((event) => event.event?.$case === "loaded")!.event;
    return loaded?.$case === "loaded" ? loaded.value : undefined;
  });
}

describe("what a runner reports a load took (unified memory counted once)", () => {
  const before = { rssBytes: 100 * MB, anonymousRssBytes: 60 * MB };
  const after = { rssBytes: 140 * MB, anonymousRssBytes: 98 * MB };

  it("on a Jetson, the shared pool's growth already holds the anonymous RSS growth: 40 + (590 - 38) MB", async () => {
    const loaded = await runnerWith([before, after], 590 * MB, true);
    assert.equal(loaded?.measuredBytes, 592 * MB);
    assert.equal(loaded?.gpuBytes, 552 * MB);
    assert.deepEqual({ backend: loaded?.backend, gpuLayers: loaded?.gpuLayers }, { backend: "cuda", gpuLayers: 24 });
  });

  it("on a discrete GPU, RSS growth and VRAM growth are separate memories: 40 + 590 MB", async () => {
    const loaded = await runnerWith([before, after], 590 * MB, false);
    assert.equal(loaded?.measuredBytes, 630 * MB);
    assert.equal(loaded?.gpuBytes, 590 * MB);
  });

  it("on the CPU, only the RSS growth", async () => {
    const loaded = await runnerWith([before, after], 0, false);
    assert.equal(loaded?.measuredBytes, 40 * MB);
  });
});

describe("what a runner reports for placement's two budgets (discrete GPU, gpu_budget)", () => {
  it("estimates with the model's gpu_layers and reports the GPU part apart", async () => {
    // arrange: an engine whose estimate puts 250 of 300 MB on the GPU with the layers asked for
    const asked: number[] = [];
    const events: RunnerEvent[] = [];
    let settle!: () => void;
    const answered = new Promise<void>((resolve) => (settle = resolve));
    const engine: Engine = {
      init: async () => undefined,
      estimate: async (_path, _context, _sequences, gpuLayers) => (asked.push(gpuLayers), { bytes: 300 * MB, gpuBytes: 250 * MB }),
      load: async () => {
        throw new Error("not loaded in this test");
      },
    };
    const runner = new Runner({
      runnerId: "r1",
      dataAddress: () => "127.0.0.1:1",
      engine,
      send: (event) => (events.push(event), settle()),
      exit: () => undefined,
      logger: createLogger("test", {}, { quiet: true }),
      memory: () => ({ rssBytes: 100 * MB, anonymousRssBytes: 60 * MB }),
    });
    // act
    runner.handle({ command: { $case: "estimate", value: { requestId: "m", path: storiesModel, contextSize: 512, sequences: 1, gpuLayers: 12 } } });
    await answered;
    // assert
    assert.deepEqual(asked, [12]);
    assert.deepEqual(events[0]?.event, { $case: "estimate", value: { requestId: "m", bytes: 300 * MB, gpuBytes: 250 * MB, error: "" } });
  });
});
