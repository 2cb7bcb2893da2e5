import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { collect, generateRequest, startCluster, unary, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";

interface RunnerRow {
  id: string;
  pid: number;
  model: string;
  state: string;
  inFlight: number;
}

const runners = async (cluster: TestCluster) =>
  (await unary<{ runners: RunnerRow[] }>((cb) => cluster.admin.getStatus({}, cb))).runners.filter((runner) => runner.model === "stories" && runner.state === "ready");

/** Polls placement's status until `check` holds (status changes are events we cannot subscribe to per runner). */
async function until<T>(probe: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const long = (extra: Parameters<typeof generateRequest>[0] = {}) =>
  generateRequest({ model: "stories", maxTokens: 200, sampling: { temperature: 0, ignoreEos: true, stop: [] }, ...extra });

describe("the router: replicas, failover, cancellation, deadlines (2 real replicas)", function () {
  this.timeout(120_000);
  let cluster: TestCluster;

  beforeEach(async () => {
    cluster = await startCluster({
      budget: "2GiB",
      placement: { spare_runners: 1 },
      models: [{ name: "stories", path: storiesModel, context: 512, threads: 1, sequences: 4, tasks: ["story"], preload: true, replicas: { min: 2, max: 2 } }],
    });
    await until(() => runners(cluster), (ready) => ready.length === 2, 90_000);
  });
  afterEach(async () => cluster?.stop());

  it("spreads 8 concurrent streams evenly over the two replicas", async () => {
    const streams = Array.from({ length: 8 }, () => collect(cluster.inference, long()));
    const busy = await until(() => runners(cluster), (ready) => ready.reduce((sum, runner) => sum + runner.inFlight, 0) === 8);
    assert.deepEqual(busy.map((runner) => runner.inFlight), [4, 4]);
    for (const result of await Promise.all(streams)) assert.equal(result.error, undefined, result.error?.details);
  });

  it("retries invisibly on the other replica when a runner dies before its first token", async () => {
    // arrange: freeze one replica so its streams cannot start, send requests, then kill it
    const [frozen] = await runners(cluster);
    process.kill(frozen!.pid, "SIGSTOP");
    const streams = Array.from({ length: 4 }, () => collect(cluster.inference, long({ maxTokens: 32 })));
    await until(() => runners(cluster), (ready) => ready.find((runner) => runner.id === frozen!.id)!.inFlight > 0);
    // act
    process.kill(frozen!.pid, "SIGKILL");
    // assert
    for (const result of await Promise.all(streams)) {
      assert.equal(result.error, undefined, result.error?.details);
      assert.equal(result.done?.usage?.completionTokens, 32);
    }
  });

  it("resumes a resumable stream on the other replica when its runner dies mid-stream", async () => {
    const uninterrupted = await collect(cluster.inference, long({ maxTokens: 120 }));
    let killed = false;
    const resumed = await collect(cluster.inference, long({ maxTokens: 120, resumable: true }), {
      onEvent: (event) => {
        if (event.event?.$case !== "token" || killed) return;
        killed = true;
        void runners(cluster).then((ready) => {
          const serving = ready.find((runner) => runner.inFlight > 0);
          if (serving) process.kill(serving.pid, "SIGKILL");
        });
      },
    });
    assert.equal(resumed.error, undefined, resumed.error?.details);
    assert.equal(resumed.done?.usage?.completionTokens, 120);
    // greedy decoding continues the same story: the texts agree on a long prefix
    const prefix = uninterrupted.text.slice(0, 60);
    assert.ok(resumed.text.startsWith(prefix), `resumed text diverged:\n${resumed.text}\n---\n${uninterrupted.text}`);
  });

  it("ends a non-resumable stream with UNAVAILABLE and the count when its runner dies mid-stream", async () => {
    let tokensAtKill = 0;
    const result = await collect(cluster.inference, long({ maxTokens: 400 }), {
      onEvent: (event) => {
        if (event.event?.$case !== "token" || tokensAtKill) return;
        tokensAtKill = 1;
        void runners(cluster).then((ready) => {
          const serving = ready.find((runner) => runner.inFlight > 0);
          if (serving) process.kill(serving.pid, "SIGKILL");
        });
      },
    });
    assert.equal(result.error?.code, status.UNAVAILABLE);
    assert.match(result.error!.details, new RegExp(`failed after \\d+ tokens were delivered`));
    const delivered = Number(/after (\d+) tokens/.exec(result.error!.details)![1]);
    assert.equal(delivered, result.tokens, "the message counts exactly what the client received");
  });

  it("frees the slot on cancel: the next request starts at once", async () => {
    // fill all 8 sequences, cancel one stream, and a 9th request gets its slot
    const held = Array.from({ length: 7 }, () => collect(cluster.inference, long({ maxTokens: 480 })));
    await until(() => runners(cluster), (ready) => ready.reduce((sum, runner) => sum + runner.inFlight, 0) === 7);
    await collect(cluster.inference, long({ maxTokens: 480 }), {
      onEvent: (event, call) => {
        if (event.event?.$case === "token") call.cancel();
      },
    });
    const next = await collect(cluster.inference, long({ maxTokens: 4 }));
    assert.equal(next.error, undefined);
    // the other 7 streams run for seconds: a short queue time means it got the freed slot
    assert.ok(next.done!.timings!.queueMs < 250, `waited ${next.done!.timings!.queueMs} ms for a slot: ${JSON.stringify(next.events.filter((e) => e.event?.$case !== "token"))} ${JSON.stringify(await runners(cluster))}`);
    await Promise.all(held);
  });

  it("does not let a client that stops reading stall another stream on the same runner", async () => {
    // arrange: one paused reader on each replica, so any new stream shares a runner with one
    const pausedStream = () => {
      const call = cluster.inference.generate(long({ maxTokens: 400 }));
      const state = { tokens: 0, done: false };
      let firstToken!: () => void;
      const streaming = new Promise<void>((resolve) => (firstToken = resolve));
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (message: { event?: { $case: string } }) => {
          if (message.event?.$case === "token" && state.tokens++ === 0) {
            call.pause();
            firstToken();
          }
          if (message.event?.$case === "done") state.done = true;
        });
        call.on("end", () => resolve());
        call.on("error", reject);
      });
      return { call, state, ended, streaming };
    };
    const paused = [pausedStream(), pausedStream()];
    await Promise.all(paused.map((stream) => stream.streaming));
    // act: another stream runs meanwhile
    const other = await collect(cluster.inference, long({ maxTokens: 400 }));
    // assert: it completed while both readers were still paused; they complete once read
    assert.equal(other.error, undefined, other.error?.details);
    assert.equal(other.done?.usage?.completionTokens, 400);
    assert.ok(paused.every((stream) => !stream.state.done), "the paused streams were not read meanwhile");
    for (const stream of paused) stream.call.resume();
    await Promise.all(paused.map((stream) => stream.ended));
    assert.ok(paused.every((stream) => stream.state.done));
  });

  it("routes a story task to stories260K", async () => {
    const result = await collect(cluster.inference, generateRequest({ task: "story", maxTokens: 8 }));
    assert.equal(result.error, undefined, result.error?.details);
    assert.equal(result.done?.model, "stories");
    const unknown = await collect(cluster.inference, generateRequest({ task: "poetry", maxTokens: 8 }));
    assert.equal(unknown.error?.code, status.NOT_FOUND);
    assert.match(unknown.error!.details, /known tasks: story/);
  });

  it("returns DEADLINE_EXCEEDED when the deadline passes, and the runner stops", async () => {
    const result = await collect(cluster.inference, long({ maxTokens: 480 }), { deadline: new Date(Date.now() + 150) });
    assert.equal(result.error?.code, status.DEADLINE_EXCEEDED);
    await until(() => runners(cluster), (ready) => ready.every((runner) => runner.inFlight === 0), 5_000);
  });
});
