import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { forgeModel } from "../../forge/forge-model.js";
import { ModelState, type ModelInfo } from "../../gen/modelswap/v1/inference.js";
import { collect, generateRequest, startCluster, unary, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";

const MiB = 1024 * 1024;
const BUDGET = 440 * MiB;

/**
 * Four models in one shared runner under a budget that holds m100 and m150 beside the
 * runner's own memory (about 130 + 120 + 185 MB measured) but not m50 as well (+60 MB):
 * requests cycling across them force swaps. What a user must see: every request
 * served, no stream cut, the policy's eviction order, memory within the budget.
 */
describe("swapping models under a small budget (real runners, lru)", function () {
  this.timeout(180_000);
  let directory: string;
  let cluster: TestCluster;
  /** Peak RSS of each runner process (VmHWM), by pid. */
  const runnerPeaks = new Map<number, number>();
  let readPeaks = () => {};

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-swaps-"));
    const forged = async (name: string, bytes: number) => {
      const file = path.join(directory, `${name}.gguf`);
      await forgeModel({ sizeBytes: bytes, outPath: file, weightType: "q8_0", seed: bytes });
      return file;
    };
    const [m50, m100, m150] = await Promise.all([forged("m50", 50e6), forged("m100", 100e6), forged("m150", 150e6)]);
    cluster = await startCluster({
      budget: "440MiB",
      placement: { eviction: "lru", spare_runners: 0 },
      defaults: { threads: 1, context: 256, sequences: 2 },
      models: [
        { name: "stories", path: storiesModel, context: 2048 },
        { name: "m50", path: m50 },
        { name: "m100", path: m100 },
        { name: "m150", path: m150 },
        { name: "m150-long", path: m150, context: 65536, sequences: 8 },
      ],
    });
    // Every runner process that ever started, by pid: its own high-water mark (VmHWM) is read
    // before it exits (a runner that exits during the test is read when placement says so).
    const sampleHighWaterMarks = () => {
      for (const runner of cluster.placement.core.status().runners) {
        if (runner.pid > 0) runnerPeaks.set(runner.pid, Math.max(runnerPeaks.get(runner.pid) ?? 0, highWaterMark(runner.pid)));
      }
    };
    cluster.onEvent((event) => {
      if (event.kind === "unloading" || event.kind === "evicted" || event.kind === "loaded") sampleHighWaterMarks();
    });
    readPeaks = sampleHighWaterMarks;
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

  it("keeps one model streaming while another loads into the same runner", async () => {
    // arrange: a long stream on stories, and a cold model that will load beside it
    const { models } = await unary<{ models: ModelInfo[] }>((cb) => cluster.inference.listModels({}, cb));
    const cold = models.find((model) => model.name.startsWith("m") && model.name !== "m150-long" && model.state !== ModelState.MODEL_STATE_RESIDENT)!;
    let tokensSoFar = 0;
    let tokensWhenLoadStarted: number | undefined;
    let tokensWhenLoaded: number | undefined;
    let loadDone: Promise<unknown> | undefined;
    // act: once stories streams, ask for the cold model; note how many tokens stories had when its load started and ended
    const during = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 1500, sampling: { temperature: 0, ignoreEos: true, stop: [] } }), {
      onEvent: (event) => {
        if (event.event?.$case !== "token") return;
        tokensSoFar += event.event.value.tokens;
        if (!loadDone) {
          loadDone = collect(cluster.inference, generateRequest({ model: cold.name, maxTokens: 4, sampling: { temperature: 0, ignoreEos: true, stop: [] } }), {
            onEvent: (coldEvent) => {
              if (coldEvent.event?.$case === "loading" && coldEvent.event.value.progress === 0) tokensWhenLoadStarted ??= tokensSoFar;
              if (coldEvent.event?.$case === "token") tokensWhenLoaded ??= tokensSoFar;
            },
          });
        }
      },
    });
    const swap = (await loadDone) as Awaited<ReturnType<typeof ask>>;
    // assert: both served, in one runner, and stories kept streaming while the other model loaded
    assert.equal(swap.error, undefined, swap.error?.details);
    assert.equal(during.done?.usage?.completionTokens, 1500);
    assert.ok(swap.done!.timings!.loadMs > 0, "the other model really loaded meanwhile");
    const status = await unary<{ runners: { models: { name: string }[] }[] }>((cb) => cluster.admin.getStatus({}, cb));
    assert.ok(status.runners.some((runner) => runner.models.some((m) => m.name === "stories") && runner.models.some((m) => m.name === cold.name)), "one runner hosts both");
    assert.ok(tokensWhenLoadStarted !== undefined && tokensWhenLoaded !== undefined, "the load happened while stories streamed");
    assert.ok(tokensWhenLoaded! > tokensWhenLoadStarted!, `stories delivered no token while ${cold.name} loaded (${tokensWhenLoadStarted} -> ${tokensWhenLoaded})`);
  });

  it("keeps the runners' measured RSS within the budget + 5%", () => {
    readPeaks();
    // The sum of each runner's own peak bounds the peak of their sum from above.
    const peak = [...runnerPeaks.values()].reduce((sum, bytes) => sum + bytes, 0);
    assert.ok(peak > 0, "runner high-water marks were read");
    assert.ok(peak <= BUDGET * 1.05, `runners' peak RSS ${(peak / MiB).toFixed(0)} MiB over budget ${(BUDGET / MiB).toFixed(0)} MiB + 5%`);
  });

  it("refuses a model too big for the whole budget at once, naming sizes", async () => {
    const started = Date.now();
    const result = await ask("m150-long");
    assert.equal(result.error?.code, status.FAILED_PRECONDITION);
    assert.match(result.error!.details, /needs about .* but the memory budget is 440\.0 MiB/);
    assert.ok(Date.now() - started < 5_000, "refused without waiting for memory");
    const stillFine = await ask("stories", 4);
    assert.equal(stillFine.error, undefined);
  });
});

/** VmHWM of a process: the most memory it has held at once (0 when it is gone). */
function highWaterMark(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
