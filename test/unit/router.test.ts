import { credentials, status, type ServerDuplexStream, type ServerWritableStream } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
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
  /** Every Acquire the fake placement saw: its request, how each stream on it ended (park) and how the lease ended (release). */
  const acquires: {
    model: string;
    exclude: string[];
    granted?: string;
    parked: LeaseOutcome[];
    resumed: number;
    released?: LeaseOutcome;
    endedWithoutRelease?: boolean;
    call: ServerDuplexStream<AcquireMessage, AcquireEvent>;
  }[] = [];
  /** Resolves once `count` leases have been released or parked (these travel after generate() returns). */
  const releaseWaiters: { count: number; resolve: () => void }[] = [];
  const released = (count: number) =>
    new Promise<void>((resolve) => {
      releaseWaiters.push({ count, resolve });
      noteRelease();
    });
  const noteRelease = () => {
    const done = acquires.filter((entry) => entry.released !== undefined || entry.parked.length > 0).length;
    for (const waiter of [...releaseWaiters]) if (done >= waiter.count) releaseWaiters.splice(releaseWaiters.indexOf(waiter), 1) && waiter.resolve();
  };
  let router: Router;
  let placement: PlacementClient;
  /** Emits "message" for every message the fake placement receives. */
  const placementMessages = new EventEmitter();
  /** Resolves once `holds()` is true, checked on every message the fake placement receives. */
  const untilPlacementSees = (holds: () => boolean) =>
    new Promise<void>((resolve) => {
      if (holds()) return resolve();
      const check = () => holds() && (placementMessages.off("message", check), resolve());
      placementMessages.on("message", check);
    });

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
                entry = { model: m.value.model, exclude: m.value.excludeRunners, parked: [], resumed: 0, call };
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
              } else if (m?.$case === "park" && entry) {
                entry.parked.push(m.value.outcome);
                noteRelease();
              } else if (m?.$case === "resume" && entry) {
                entry.resumed++;
              }
              placementMessages.emit("message");
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
    // assert: two leases, the second excluding the runner that failed; the good one is kept for the next request
    assert.deepEqual(
      acquires.map(({ model, exclude, granted, released, parked }) => ({ model, exclude, granted, released, parked })),
      [
        { model: "m", exclude: [], granted: "r-bad", released: LeaseOutcome.LEASE_OUTCOME_RUNNER_FAILED, parked: [] },
        { model: "m", exclude: ["r-bad"], granted: "r-good", released: undefined, parked: [LeaseOutcome.LEASE_OUTCOME_OK] },
      ],
    );
    const tokens = events.flatMap((event) => (event.event?.$case === "token" ? [event.event.value.tokens] : []));
    assert.equal(tokens.reduce((sum, count) => sum + count, 0), 5, "every token delivered once");
    const done = events.at(-1)?.event;
    assert.equal(done?.$case === "done" && done.value.failovers, 1);
    // the runner got the model's resolved sampling (the project's defaults here)
    assert.ok(Math.abs((runners.get("r-good")!.served.at(-1)?.sampling?.topP ?? 0) - 0.95) < 1e-6);
  });

  describe("a lease the router kept", () => {
    // Each story starts with a parked lease: the one the previous story left, else a request's.
    beforeEach(async () => {
      const last = acquires.at(-1);
      if (last && last.released === undefined && last.parked.length > 0) return;
      await router.generate(request(1), new AbortController().signal, undefined, () => undefined);
      await untilPlacementSees(() => acquires.at(-1)!.parked.length > 0);
    });

    it("runs the model's next request on the lease it kept, without an Acquire", async () => {
      const held = acquires.at(-1)!;
      const before = acquires.length;
      const [resumedBefore, servedBefore] = [held.resumed, runners.get(held.granted!)!.served.length];
      const events: GenerateResponse[] = [];
      await router.generate(request(3), new AbortController().signal, undefined, (event) => void events.push(event));
      assert.equal(acquires.length, before, "no new Acquire");
      assert.equal(held.resumed, resumedBefore + 1);
      assert.equal(runners.get(held.granted!)!.served.length, servedBefore + 1);
      const done = events.at(-1)?.event;
      assert.equal(done?.$case === "done" && done.value.usage?.completionTokens, 3);
    });

    it("refuses max_tokens beyond the leased model's context, and keeps the lease", async () => {
      const held = acquires.at(-1)!;
      const [parkedBefore, resumedBefore] = [held.parked.length, held.resumed];
      await assert.rejects(router.generate(request(4096), new AbortController().signal, undefined, () => undefined), (error: { code?: number }) => error.code === status.INVALID_ARGUMENT);
      await untilPlacementSees(() => held.parked.length === parkedBefore + 1);
      assert.equal(held.resumed, resumedBefore + 1);
      assert.equal(held.released, undefined);
    });

    it("gives a parked lease back at once when placement revokes it, and asks placement again next time", async () => {
      const held = acquires.at(-1)!;
      const before = acquires.length;
      // act
      held.call.write({ event: { $case: "revoke", value: {} } });
      await untilPlacementSees(() => held.released !== undefined);
      // assert
      assert.equal(held.released, LeaseOutcome.LEASE_OUTCOME_IDLE);
      await router.generate(request(2), new AbortController().signal, undefined, () => undefined);
      assert.ok(acquires.length > before, "a new Acquire");
      assert.deepEqual(acquires[before]!.exclude, []);
    });
  });
});
