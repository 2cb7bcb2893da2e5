import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { forgeModel } from "../../forge/forge-model.js";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { collect, generateRequest, startCluster, unary, type StreamResult, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";

const MB = 1_000_000;
const SAMPLING = { temperature: 0, ignoreEos: true, stop: [] };

/**
 * Several models in one runner process (isolation: shared, the default), one in a process
 * of its own (isolation: process), under a budget that holds them all. What a user must
 * see: streams from models sharing a runner run at once; an unload gives the memory back;
 * a crash of the shared runner ends or fails over every stream on it, none hangs, and the
 * next requests reload the models.
 */
describe("shared runners: several models in one process (real runners)", function () {
  this.timeout(180_000);
  let directory: string;
  let cluster: TestCluster;

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-shared-"));
    // F16 weights are mapped: an unload gives back the mapped pages and the context.
    const first = path.join(directory, "a.gguf");
    await forgeModel({ sizeBytes: 40 * MB, outPath: first, weightType: "f16", seed: 7, tokenizerFrom: storiesModel });
    for (const name of ["b", "c"]) copyFileSync(first, path.join(directory, `${name}.gguf`));
    copyFileSync(storiesModel, path.join(directory, "solo.gguf"));
    cluster = await startCluster({
      budget: "2GiB",
      placement: { eviction: "lru", spare_runners: 0 },
      defaults: { threads: 1, context: 1024, sequences: 2 },
      models: [
        ...["a", "b", "c"].map((name) => ({ name, path: path.join(directory, `${name}.gguf`) })),
        { name: "solo", path: path.join(directory, "solo.gguf"), isolation: "process" },
      ],
    });
  });
  after(async () => {
    await cluster?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  const ask = (model: string, maxTokens: number, onFirstToken?: () => void) => {
    let seen = false;
    return collect(cluster.inference, generateRequest({ model, maxTokens, sampling: SAMPLING }), {
      deadline: new Date(Date.now() + 60_000),
      onEvent: (event) => {
        if (event.event?.$case !== "token" || seen) return;
        seen = true;
        onFirstToken?.();
      },
    });
  };
  const status_ = () => unary<StatusResponse>((cb) => cluster.admin.getStatus({}, cb));
  const runnerHolding = async (model: string) => (await status_()).runners.find((runner) => runner.models.some((hosted) => hosted.name === model && hosted.state === "ready"));

  it("streams from three models in one shared runner at once", async () => {
    const results = await Promise.all(["a", "b", "c"].map((model) => ask(model, 48)));
    for (const [index, result] of results.entries()) {
      assert.equal(result.error, undefined, `${"abc"[index]}: ${result.error?.details}`);
      assert.equal(result.done?.usage?.completionTokens, 48);
    }
    const holder = await runnerHolding("a");
    assert.ok(holder, "a is resident");
    assert.deepEqual(holder.models.map((hosted) => hosted.name).sort(), ["a", "b", "c"]);
    assert.equal(holder.isolated, false);
  });

  it("gives back at least 80% of a model's measured bytes when it unloads from the shared runner", async () => {
    const holder = (await runnerHolding("b"))!;
    const loaded = cluster.runnerEvents.find((entry) => entry.runnerId === holder.id && entry.event.event?.$case === "loaded" && entry.event.event.value.model === "b");
    assert.ok(loaded?.event.event?.$case === "loaded");
    const measured = loaded.event.event.value.measuredBytes;
    // act
    await unary((cb) => cluster.admin.unloadModel({ model: "b" }, cb));
    await cluster.waitForEvent((event) => event.kind === "unloaded" && event.model === "b");
    // assert
    const unloaded = cluster.runnerEvents.find((entry) => entry.runnerId === holder.id && entry.event.event?.$case === "unloaded" && entry.event.event.value.model === "b");
    assert.ok(unloaded?.event.event?.$case === "unloaded");
    const { rssBeforeBytes, rssBytes } = unloaded.event.event.value;
    const returned = rssBeforeBytes - rssBytes;
    assert.ok(returned >= 0.8 * measured, `unloading b returned ${(returned / MB).toFixed(1)} MB of its measured ${(measured / MB).toFixed(1)} MB`);
    assert.deepEqual((await runnerHolding("a"))!.models.map((hosted) => hosted.name).sort(), ["a", "c"], "a and c stay, still served");
  });

  it("gives an isolation: process model a runner of its own", async () => {
    const result = await ask("solo", 8);
    assert.equal(result.error, undefined, result.error?.details);
    const own = (await runnerHolding("solo"))!;
    assert.equal(own.isolated, true);
    assert.deepEqual(own.models.map((hosted) => hosted.name), ["solo"]);
    assert.notEqual(own.id, (await runnerHolding("a"))!.id);
  });

  it("after kill -9 of the shared runner, ends or fails over every stream on it, none hangs, and reloads its models on their next request", async () => {
    const shared = (await runnerHolding("a"))!;
    let started = 0;
    let killed = false;
    const onFirstToken = () => {
      // act: kill the runner once all three streams are under way
      if (++started === 3 && !killed) {
        killed = true;
        process.kill(shared.pid, "SIGKILL");
      }
    };
    const streams: Promise<StreamResult>[] = [ask("a", 1000, onFirstToken), ask("a", 1000, onFirstToken), ask("c", 1000, onFirstToken)];
    const results = await Promise.all(streams); // each has a 60 s deadline: a hung one fails the test as DEADLINE_EXCEEDED
    assert.equal(killed, true, "the three streams started");
    for (const result of results) {
      if (result.error) {
        assert.equal(result.error.code, status.UNAVAILABLE, result.error.details);
        assert.match(result.error.details, /failed after \d+ tokens/);
      } else {
        assert.equal(result.done?.usage?.completionTokens, 1000, "a stream that went on completed");
      }
    }
    await cluster.waitForEvent((event) => event.kind === "runner_exited" && event.runnerId === shared.id);
    // accounting: the dead runner and both its models are gone at once; solo's runner is untouched
    const after = await status_();
    assert.equal(after.runners.some((runner) => runner.id === shared.id), false);
    assert.equal(after.models.filter((model) => ["a", "c"].includes(model.info!.name) && model.info!.replicas > 0).length, 0);
    const committed = cluster.placement.core.memory.committedBytes();
    const charged = cluster.placement.core.status().runners.reduce((sum, runner) => sum + runner.baseBytes + runner.models.reduce((bytes, hosted) => bytes + hosted.bytes, 0), 0);
    assert.equal(committed, charged, "the budget is charged for the live runners only");
    // the next requests reload them
    for (const model of ["a", "c"]) {
      const again = await ask(model, 8);
      assert.equal(again.error, undefined, `${model}: ${again.error?.details}`);
      assert.equal(again.done?.usage?.completionTokens, 8);
    }
  });
});
