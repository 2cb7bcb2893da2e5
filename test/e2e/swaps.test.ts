import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { forgeModel } from "../../forge/forge-model.js";
import { ModelState, type ModelInfo } from "../../gen/modelswap/v1/inference.js";
import { collect, generateRequest, startCluster, unary, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";

const MiB = 1024 * 1024;
const BUDGET = 720 * MiB;

/**
 * Four models under a budget that holds about two of them beside the runners' own
 * memory: requests cycling across them force swaps. What a user must see: every request
 * served, no stream cut, the policy's eviction order, memory within the budget.
 */
describe("swapping models under a small budget (real runners, lru)", function () {
  this.timeout(180_000);
  let directory: string;
  let cluster: TestCluster;
  const rssPeaks: number[] = [];

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-swaps-"));
    const forged = async (name: string, bytes: number) => {
      const file = path.join(directory, `${name}.gguf`);
      await forgeModel({ sizeBytes: bytes, outPath: file, weightType: "q8_0", seed: bytes });
      return file;
    };
    const [m50, m100, m150] = await Promise.all([forged("m50", 50e6), forged("m100", 100e6), forged("m150", 150e6)]);
    cluster = await startCluster({
      budget: "720MiB",
      placement: { eviction: "lru", spare_runners: 1 },
      defaults: { threads: 1, context: 256, sequences: 2 },
      models: [
        { name: "stories", path: storiesModel, context: 512 },
        { name: "m50", path: m50 },
        { name: "m100", path: m100 },
        { name: "m150", path: m150 },
        { name: "m150-long", path: m150, context: 65536, sequences: 8 },
      ],
    });
    // Track the runners' real RSS: the latest heartbeat of every live runner, summed.
    const latest = new Map<string, number>();
    const sample = () => {
      for (const { runnerId, event } of cluster.runnerEvents.splice(0)) {
        if (event.event?.$case === "heartbeat") latest.set(runnerId, Number(event.event.value.rssBytes));
        if (event.event?.$case === "loaded") latest.set(runnerId, Number(event.event.value.rssBytes));
      }
      for (const exited of cluster.events.filter((e) => e.kind === "runner_exited")) latest.delete(exited.runnerId);
      rssPeaks.push([...latest.values()].reduce((sum, rss) => sum + rss, 0));
    };
    const timer = setInterval(sample, 100);
    timer.unref();
  });
  after(async () => {
    await cluster?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  const ask = (model: string, maxTokens = 16) =>
    collect(cluster.inference, generateRequest({ model, maxTokens, sampling: { temperature: 0, ignoreEos: true, stop: [] } }));

  it("serves every request while evicting in least-recently-used order", async () => {
    // act: m100, m150, m100 again, then stories and m50 need room
    for (const model of ["m100", "m150", "m100", "m50", "m150"]) {
      const result = await ask(model);
      assert.equal(result.error, undefined, `${model}: ${result.error?.details}`);
      assert.equal(result.done?.usage?.completionTokens, 16);
    }
    // assert: m150 was least recently used when m50 came, then m100 when m150 came back
    const evicted = cluster.events.filter((event) => event.kind === "evicted").map((event) => event.model);
    assert.deepEqual(evicted, ["m150", "m100"]);
  });

  it("never cuts a stream in flight: the streaming model is not the victim", async () => {
    // arrange: a long stream on m150 (resident since the last test) ...
    const evictionsBefore = cluster.events.filter((event) => event.kind === "evicted").length;
    let swapStarted: Promise<unknown> | undefined;
    const long = collect(cluster.inference, generateRequest({ model: "m150", maxTokens: 200, sampling: { temperature: 0, ignoreEos: true, stop: [] } }), {
      onEvent: (event) => {
        // ... act: once it streams, a request for a cold model needs memory
        if (event.event?.$case === "token" && !swapStarted) swapStarted = ask("m100");
      },
    });
    const longResult = await long;
    const streamEndedAt = Date.now();
    const swapped = (await swapStarted) as Awaited<ReturnType<typeof ask>>;
    // assert
    assert.equal(longResult.error, undefined, longResult.error?.details);
    assert.equal(longResult.done?.usage?.completionTokens, 200);
    assert.equal(swapped.error, undefined, swapped.error?.details);
    const evictedWhileStreaming = cluster.events
      .filter((event) => event.kind === "evicted")
      .slice(evictionsBefore)
      .filter((event) => event.model === "m150" && event.timeUnixMs < streamEndedAt);
    assert.deepEqual(evictedWhileStreaming, [], "m150 was evicted while it streamed");
  });

  it("keeps one model streaming at pace while another loads", async () => {
    // arrange: stories streams alone, for a baseline pace
    const streamOptions = { model: "stories", maxTokens: 400, sampling: { temperature: 0, ignoreEos: true, stop: [] } };
    const alone = await collect(cluster.inference, generateRequest(streamOptions));
    // act: the same stream while a cold model (evicting another) loads beside it
    const { models } = await unary<{ models: ModelInfo[] }>((cb) => cluster.inference.listModels({}, cb));
    const cold = models.find((model) => model.name.startsWith("m") && model.name !== "m150-long" && model.state !== ModelState.MODEL_STATE_RESIDENT)!;
    let loadDone: Promise<unknown> | undefined;
    const during = await collect(cluster.inference, generateRequest(streamOptions), {
      onEvent: (event) => {
        if (event.event?.$case === "token" && !loadDone) loadDone = ask(cold.name);
      },
    });
    const swap = (await loadDone) as Awaited<ReturnType<typeof ask>>;
    // assert: both served; the stream kept most of its pace (2 cores: the load takes one)
    assert.equal(swap.error, undefined, swap.error?.details);
    assert.ok(swap.done!.timings!.loadMs > 0, "the other model really loaded meanwhile");
    const ratio = during.done!.timings!.tokensPerSecond / alone.done!.timings!.tokensPerSecond;
    assert.ok(ratio > 0.5, `stream ran at ${(ratio * 100).toFixed(0)}% of its pace while a model loaded`);
  });

  it("keeps the runners' measured RSS within the budget + 5%", () => {
    const peak = Math.max(...rssPeaks);
    assert.ok(peak > 0, "RSS was sampled");
    assert.ok(peak <= BUDGET * 1.05, `peak RSS ${(peak / MiB).toFixed(0)} MiB over budget ${(BUDGET / MiB).toFixed(0)} MiB + 5%`);
  });

  it("refuses a model too big for the whole budget at once, naming sizes", async () => {
    const started = Date.now();
    const result = await ask("m150-long");
    assert.equal(result.error?.code, status.FAILED_PRECONDITION);
    assert.match(result.error!.details, /needs about .* but the memory budget is 720\.0 MiB/);
    assert.ok(Date.now() - started < 5_000, "refused without waiting for memory");
    const stillFine = await ask("stories", 4);
    assert.equal(stillFine.error, undefined);
  });
});
