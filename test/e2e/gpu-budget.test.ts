// A box with a discrete GPU, as placement reads it (injected readings: no GPU is needed), and a
// Jetson: placement sizes gpu_budget at start, `modelswap ps` shows it, and a Jetson refuses it.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { credentials, Metadata } from "@grpc/grpc-js";
import { ConfigError } from "../../common/config/config-error.js";
import { parseConfig } from "../../common/config/parse-config.js";
import { createLogger } from "../../common/logger.js";
import { psCommand } from "../../cli/client-commands.js";
import { startPlacement } from "../../services/placement/placement-server.js";
import { collect, generateRequest, startCluster, type TestCluster } from "../support/cluster.js";
import { FakeMemorySource } from "../support/fake-memory-source.js";
import { storiesModel } from "../support/paths.js";

const GiB = 1024 ** 3;

/** What `modelswap ps` prints against the cluster's gateway. */
async function ps(cluster: TestCluster): Promise<{ code: number; printed: string }> {
  const out = new PassThrough();
  let printed = "";
  out.on("data", (chunk: Buffer) => (printed += chunk.toString()));
  const code = await psCommand({ address: cluster.gateway.address, credentials: credentials.createInsecure(), metadata: () => new Metadata() }, out);
  return { code, printed };
}

describe("gpu_budget at placement start (injected memory readings)", function () {
  this.timeout(60_000);
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it("on a discrete GPU is sized from the GPU's free memory, and ps shows the GPU budget and its use", async () => {
    // arrange: 6 GiB of 8 GiB free on the GPU; gpu_budget: 50% -> 3 GiB
    const box = new FakeMemorySource({ physicalBytes: 64 * GiB, availableBytes: 48 * GiB, unifiedMemory: false }, { totalBytes: 8 * GiB, freeBytes: 6 * GiB });
    cluster = await startCluster(
      { budget: "1GiB", gpu_budget: "50%", models: [{ name: "stories", path: storiesModel, context: 256, threads: 1, sequences: 1, gpu: "cpu" }] },
      "/",
      box,
    );
    // act: the model runs on the CPU here, so it charges nothing to gpu_budget
    const result = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 8 }));
    const { code, printed } = await ps(cluster);
    // assert
    assert.ok(result.tokens > 0);
    assert.equal(cluster.placement.gpuBudgetBytes, 3 * GiB);
    assert.equal(code, 0);
    assert.match(printed, /budget 1\.0 GiB, resident [\d.]+ \w+, gpu budget 3\.0 GiB, gpu resident 0 B, policy /);
    assert.match(printed, /stories \[cpu\]/);
  });

  it("without gpu_budget, ps shows no GPU budget", async () => {
    const box = new FakeMemorySource({ physicalBytes: 64 * GiB, availableBytes: 48 * GiB, unifiedMemory: false }, { totalBytes: 8 * GiB, freeBytes: 6 * GiB });
    cluster = await startCluster({ budget: "1GiB", models: [{ name: "stories", path: storiesModel, context: 256, threads: 1, sequences: 1, gpu: "cpu" }] }, "/", box);
    assert.equal(cluster.placement.gpuBudgetBytes, undefined);
    assert.equal(cluster.placement.core.status().gpuBudgetBytes, 0);
    const { code, printed } = await ps(cluster);
    assert.equal(code, 0);
    assert.match(printed, /^budget 1\.0 GiB, resident \S+, policy cost$/m);
    assert.doesNotMatch(printed, /gpu budget|gpu resident/);
  });

  it("on a Jetson (unified memory) refuses gpu_budget before anything starts", async () => {
    const jetson = new FakeMemorySource({ physicalBytes: 7620176 * 1024, availableBytes: 6 * GiB, unifiedMemory: true });
    const config = parseConfig({ budget: "75%", gpu_budget: "2GiB", placement: { listen: "127.0.0.1:0" }, models: [{ name: "stories", path: storiesModel }] }, "/");
    await assert.rejects(
      startPlacement({ config, logger: createLogger("test", {}, { quiet: true }), memorySource: jetson }),
      (error: unknown) => error instanceof ConfigError && /gpu_budget is for discrete GPUs, but CPU and GPU share memory/.test(error.message),
    );
  });

  it("as a percentage on a box where no GPU is found, says to give it as a size", async () => {
    const noGpu = new FakeMemorySource({ physicalBytes: 64 * GiB, availableBytes: 48 * GiB, unifiedMemory: false });
    const config = parseConfig({ budget: "1GiB", gpu_budget: "90%", placement: { listen: "127.0.0.1:0" }, models: [{ name: "stories", path: storiesModel }] }, "/");
    await assert.rejects(
      startPlacement({ config, logger: createLogger("test", {}, { quiet: true }), memorySource: noGpu }),
      (error: unknown) => error instanceof ConfigError && /no GPU was found .*give it as a size like 20GiB/.test(error.message),
    );
  });
});
