import { credentials, status, type ServerDuplexStream, type ServerWritableStream } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { startServer, type StartedServer } from "../../common/grpc/start-server.js";
import { createLogger } from "../../common/logger.js";
import type { GenerateResponse } from "../../gen/modelswap/v1/inference.js";
import { LeaseOutcome, PlacementClient, PlacementService, type AcquireEvent, type AcquireMessage } from "../../gen/modelswap/v1/placement.js";
import { RunnerDataService, type RunnerGenerateRequest, type RunnerGenerateResponse } from "../../gen/modelswap/v1/runner.js";
import { Router } from "../../services/router/router.js";
import type { ValidatedRequest } from "../../services/router/validate-request.js";

/** A runner that answers with `tokens` tokens, or fails before its first one. */
interface FakeRunner {
  id: string;
  fails: boolean;
  served: RunnerGenerateRequest[];
}

/**
 * The router against a fake placement and fake runners on loopback: what it asks placement
 * for, what it sends the runner, how each lease ends. No model, no real placement.
 */
describe("router (fake placement and runners on loopback)", () => {
  const logger = createLogger("test", {}, { quiet: true });
  let placementServer: StartedServer;
  const runnerServers: StartedServer[] = [];
  const runners = new Map<string, FakeRunner & { address: string }>();
  /** Every Acquire the fake placement saw: its request and how the lease ended. */
  const acquires: { model: string; exclude: string[]; granted?: string; released?: LeaseOutcome; endedWithoutRelease?: boolean }[] = [];
  /** Resolves once `count` leases have been released (releases travel after generate() returns). */
  const releaseWaiters: { count: number; resolve: () => void }[] = [];
  const released = (count: number) =>
    new Promise<void>((resolve) => {
      releaseWaiters.push({ count, resolve });
      noteRelease();
    });
  const noteRelease = () => {
    const done = acquires.filter((entry) => entry.released !== undefined).length;
    for (const waiter of [...releaseWaiters]) if (done >= waiter.count) releaseWaiters.splice(releaseWaiters.indexOf(waiter), 1) && waiter.resolve();
  };
  let router: Router;
  let placement: PlacementClient;

  async function addRunner(id: string, fails: boolean): Promise<void> {
    const runner: FakeRunner = { id, fails, served: [] };
    const server = await startServer("127.0.0.1:0", [
      {
        definition: RunnerDataService,
        implementation: {
          generate: (call: ServerWritableStream<RunnerGenerateRequest, RunnerGenerateResponse>) => {
            runner.served.push(call.request);
            if (runner.fails) return call.emit("error", { code: status.UNAVAILABLE, details: "runner went away" });
            for (let index = 1; index <= call.request.maxTokens; index++) call.write({ event: { $case: "token", value: { text: ` t${index}`, count: index } } });
            call.write({ event: { $case: "done", value: { finishReason: "length", promptTokens: 3, completionTokens: call.request.maxTokens, firstTokenMs: 1, generateMs: 2 } } });
            call.end();
          },
        },
      },
    ]);
    runnerServers.push(server);
    runners.set(id, { ...runner, address: server.address, served: runner.served, fails });
  }

  before(async () => {
    await addRunner("r-bad", true);
    await addRunner("r-good", false);
    placementServer = await startServer("127.0.0.1:0", [
      {
        definition: PlacementService,
        implementation: {
          acquire: (call: ServerDuplexStream<AcquireMessage, AcquireEvent>) => {
            let entry: (typeof acquires)[number] | undefined;
            call.on("data", (message: AcquireMessage) => {
              const m = message.message;
              if (m?.$case === "request") {
                entry = { model: m.value.model, exclude: m.value.excludeRunners };
                acquires.push(entry);
                // The first runner not excluded: r-bad first, so that failover shows.
                const runner = [...runners.values()].find((candidate) => !m.value.excludeRunners.includes(candidate.id))!;
                call.write({ event: { $case: "queued", value: { position: 1, model: m.value.model } } });
                entry.granted = runner.id;
                call.write({
                  event: { $case: "granted", value: { leaseId: `lease-${acquires.length}`, model: m.value.model, runnerId: runner.id, runnerAddress: runner.address, queueMs: 0, loadMs: 0, contextSize: 512, defaultSampling: undefined, token: "" } },
                });
              } else if (m?.$case === "release" && entry) {
                entry.released = m.value.outcome;
                call.end();
                noteRelease();
              }
            });
            call.on("end", () => {
              if (entry && entry.released === undefined) entry.endedWithoutRelease = true;
              call.end();
            });
          },
          listModels: (_call: unknown, callback: (error: null, response: { models: [] }) => void) => callback(null, { models: [] }),
        },
      },
    ]);
    placement = new PlacementClient(placementServer.address, credentials.createInsecure());
    router = new Router({ placement, routes: {}, preferResident: true, logger });
  });

  after(async () => {
    router.close();
    placement.close();
    await Promise.all([placementServer, ...runnerServers].map((server) => server.shutdown(100)));
  });

  const request = (maxTokens: number): ValidatedRequest => ({ model: "m", task: "", input: { kind: "prompt", prompt: "hi" }, maxTokens, sampling: undefined, resumable: false });

  it("fails over before the first token to another runner, telling placement which runner failed and how each lease ended", async () => {
    // arrange
    acquires.length = 0;
    const events: GenerateResponse[] = [];
    // act
    await router.generate(request(5), new AbortController().signal, undefined, (event) => void events.push(event));
    await released(2);
    // assert: two leases, the second excluding the runner that failed
    assert.deepEqual(
      acquires.map(({ model, exclude, granted, released }) => ({ model, exclude, granted, released })),
      [
        { model: "m", exclude: [], granted: "r-bad", released: LeaseOutcome.LEASE_OUTCOME_RUNNER_FAILED },
        { model: "m", exclude: ["r-bad"], granted: "r-good", released: LeaseOutcome.LEASE_OUTCOME_OK },
      ],
    );
    const tokens = events.flatMap((event) => (event.event?.$case === "token" ? [event.event.value.tokens] : []));
    assert.equal(tokens.reduce((sum, count) => sum + count, 0), 5, "every token delivered once");
    const done = events.at(-1)?.event;
    assert.equal(done?.$case === "done" && done.value.failovers, 1);
    // the runner got the model's resolved sampling (the project's defaults here)
    assert.ok(Math.abs((runners.get("r-good")!.served.at(-1)?.sampling?.topP ?? 0) - 0.95) < 1e-6);
  });

  it("refuses max_tokens beyond the leased model's context and releases the lease", async () => {
    acquires.length = 0;
    await assert.rejects(router.generate(request(4096), new AbortController().signal, undefined, () => undefined), (error: { code?: number }) => error.code === status.INVALID_ARGUMENT);
    await released(1);
    assert.equal(acquires[0]?.released, LeaseOutcome.LEASE_OUTCOME_OK);
  });
});
