import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { forgeModel } from "../../forge/forge-model.js";
import type { RunnerHeartbeat } from "../../gen/modelswap/v1/runner.js";
import { collect, generateRequest, startCluster, unary, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";

const COMMON_WORDS = ["the", "was", "a", "and", "to", "she", "he", "her", "they", "day"];

describe("a user streams stories from the gateway (real runner processes)", function () {
  this.timeout(60_000);
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      budget: "1GiB",
      models: [{ name: "stories", path: storiesModel, context: 512, threads: 1, sequences: 4, aliases: ["tiny"], preload: true }],
    });
    await cluster.waitForEvent((event) => event.kind === "loaded" && event.model === "stories");
  });
  after(async () => cluster?.stop());

  it("continues 'Once upon a time' with English and reports usage and timings", async () => {
    // act
    const result = await collect(cluster.inference, generateRequest({ model: "tiny", maxTokens: 64, sampling: { temperature: 0, stop: [] } }));
    // assert
    assert.equal(result.error, undefined, result.error?.details);
    const words = result.text.toLowerCase().split(/[^a-z]+/);
    const found = COMMON_WORDS.filter((word) => words.includes(word));
    assert.ok(found.length >= 3, `expected common English words in: ${result.text}`);
    const done = result.done!;
    assert.equal(done.model, "stories");
    assert.ok(["length", "stop"].includes(done.finishReason));
    assert.ok(done.usage!.promptTokens >= 4, `prompt tokens ${done.usage!.promptTokens}`);
    assert.equal(done.usage!.completionTokens, result.tokens, "every generated token reached the client");
    assert.ok(done.usage!.completionTokens <= 64);
    if (done.finishReason === "length") assert.equal(done.usage!.completionTokens, 64);
    const timings = done.timings!;
    assert.ok(timings.ttftMs > 0 && timings.ttftMs <= timings.totalMs, JSON.stringify(timings));
    assert.ok(timings.tokensPerSecond > 0, JSON.stringify(timings));
    assert.equal(timings.loadMs, 0, "the model was preloaded");
  });

  it("streams two concurrent requests to one model to completion", async () => {
    const request = generateRequest({ model: "stories", maxTokens: 48, sampling: { temperature: 0.8, seed: 7, stop: [] } });
    const [first, second] = await Promise.all([collect(cluster.inference, request), collect(cluster.inference, { ...request, prompt: "The little dog" })]);
    for (const result of [first, second]) {
      assert.equal(result.error, undefined, result.error?.details);
      assert.ok(result.done && result.tokens > 0);
    }
  });

  it("stops generating in the runner when the client cancels, and frees the sequence", async () => {
    // arrange: a long request, cancelled after a few tokens
    let cancelledAfter = 0;
    const result = await collect(
      cluster.inference,
      generateRequest({ model: "stories", maxTokens: 480, sampling: { temperature: 0.8, ignoreEos: true, stop: [] } }),
      {
        onEvent: (event, call) => {
          if (event.event?.$case === "token" && ++cancelledAfter === 5) call.cancel();
        },
      },
    );
    assert.equal(result.error?.code, status.CANCELLED);
    // assert: the runner reports nothing in flight, and its token count stops growing
    const runnerId = (await readyRunner(cluster, "stories")).id;
    const afterCancel = await nextHeartbeat(cluster, runnerId, (beat) => beat.inFlight === 0);
    const later = await nextHeartbeat(cluster, runnerId, () => true);
    assert.ok(afterCancel.tokensGenerated > 0 && afterCancel.tokensGenerated < 400, `generated ${afterCancel.tokensGenerated}`);
    assert.equal(later.tokensGenerated, afterCancel.tokensGenerated, "runner kept generating after cancel");
    const info = await unary<{ models: { name: string; inFlight: number }[] }>((cb) => cluster.inference.listModels({}, cb));
    assert.equal(info.models.find((model) => model.name === "stories")!.inFlight, 0);
    // the freed sequence serves the next request at once
    const next = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 8 }));
    assert.equal(next.error, undefined);
  });

  it("answers an unknown model with NOT_FOUND naming the known models", async () => {
    const result = await collect(cluster.inference, generateRequest({ model: "llama-70b" }));
    assert.equal(result.error?.code, status.NOT_FOUND);
    assert.match(result.error!.details, /known models: stories/);
  });

  it("answers bad max_tokens and sampling with INVALID_ARGUMENT saying what to fix", async () => {
    for (const maxTokens of [0, -5, 10_000_000]) {
      const result = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens }));
      assert.equal(result.error?.code, status.INVALID_ARGUMENT, `max_tokens ${maxTokens}`);
      assert.match(result.error!.details, /max_tokens/);
    }
    const overContext = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 4096 }));
    assert.equal(overContext.error?.code, status.INVALID_ARGUMENT);
    assert.match(overContext.error!.details, /context of 512/);
    const badTemperature = await collect(cluster.inference, generateRequest({ model: "stories", sampling: { temperature: 9, stop: [] } }));
    assert.equal(badTemperature.error?.code, status.INVALID_ARGUMENT);
    assert.match(badTemperature.error!.details, /temperature/);
    const empty = await collect(cluster.inference, generateRequest({ model: "stories", prompt: "" }));
    assert.equal(empty.error?.code, status.INVALID_ARGUMENT);
    // nothing else was disturbed
    const fine = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 4 }));
    assert.equal(fine.error, undefined);
  });

  it("reports a runner killed mid-stream instead of hanging, then serves again", async () => {
    const runnerPid = (await readyRunner(cluster, "stories")).pid;
    let killed = false;
    const result = await collect(
      cluster.inference,
      generateRequest({ model: "stories", maxTokens: 480, sampling: { temperature: 0.8, ignoreEos: true, stop: [] } }),
      {
        onEvent: (event) => {
          if (event.event?.$case === "token" && !killed) {
            killed = true;
            process.kill(runnerPid, "SIGKILL");
          }
        },
      },
    );
    assert.equal(result.error?.code, status.UNAVAILABLE);
    assert.match(result.error!.details, /failed after \d+ tokens were delivered/);
    await cluster.waitForEvent((event) => event.kind === "runner_exited" && /crashed/.test(event.reason));
    const again = await collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 8 }));
    assert.equal(again.error, undefined, again.error?.details);
    assert.ok(again.tokens > 0);
  });
});

describe("a forged 50 MB model", function () {
  this.timeout(90_000);
  let directory: string;
  let cluster: TestCluster | undefined;

  before(() => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-forge-"));
  });
  after(async () => {
    await cluster?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("loads in a runner and streams tokens", async () => {
    const file = path.join(directory, "forged-50mb.gguf");
    await forgeModel({ sizeBytes: 50_000_000, outPath: file, weightType: "q8_0", seed: 3 });
    cluster = await startCluster({ budget: "1GiB", models: [{ name: "forged", path: file, context: 256, threads: 1, sequences: 1 }] });
    const result = await collect(cluster.inference, generateRequest({ model: "forged", maxTokens: 24, sampling: { temperature: 0, ignoreEos: true, stop: [] } }));
    assert.equal(result.error, undefined, result.error?.details);
    assert.equal(result.done?.usage?.completionTokens, 24);
    assert.ok(result.done!.timings!.loadMs > 0, "the cold model was loaded for this request");
    const loaded = await cluster.waitForEvent((event) => event.kind === "loaded" && event.model === "forged");
    assert.ok(loaded.bytes > 40_000_000, `measured ${loaded.bytes} bytes for a 50 MB model`);
  });
});

function nextHeartbeat(cluster: TestCluster, runnerId: string, predicate: (beat: RunnerHeartbeat) => boolean, timeoutMs = 10_000): Promise<RunnerHeartbeat> {
  const start = cluster.runnerEvents.length;
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      for (let index = start; index < cluster.runnerEvents.length; index++) {
        const { runnerId: from, event } = cluster.runnerEvents[index]!;
        if (from === runnerId && event.event?.$case === "heartbeat" && predicate(event.event.value)) return resolve(event.event.value);
      }
      if (Date.now() > deadline) return reject(new Error("no matching heartbeat"));
      setImmediate(poll);
    };
    poll();
  });
}

async function readyRunner(cluster: TestCluster, model: string): Promise<{ id: string; pid: number }> {
  const status = await unary<{ runners: { id: string; pid: number; model: string; state: string }[] }>((cb) => cluster.admin.getStatus({}, cb));
  const runner = status.runners.find((candidate) => candidate.model === model && candidate.state === "ready");
  assert.ok(runner, "a ready runner for the model");
  return runner;
}
