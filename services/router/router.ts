import { credentials, Metadata, status as GrpcStatus, type ClientDuplexStream, type ClientOptions, type ServiceError } from "@grpc/grpc-js";
import { asModelswapError, cancelled, deadlineExceeded, fromServiceError, invalidArgument, isServiceError, notFound, unavailable } from "../../common/errors.js";
import { INTERNAL_METADATA } from "../../common/internal-auth/internal-metadata.js";
import type { Logger } from "../../common/logger.js";
import { ModelState, type GenerateResponse, type ModelInfo } from "../../gen/modelswap/v1/inference.js";
import { LeaseOutcome, type AcquireEvent, type AcquireMessage, type Lease, type PlacementClient } from "../../gen/modelswap/v1/placement.js";
import type { PlacementResolver, PlacementTarget } from "./placement-target.js";
import { RunnerDataClient, type RunnerGenerateResponse, type RunnerSampling } from "../../gen/modelswap/v1/runner.js";
import { SAMPLING_DEFAULTS } from "../../common/config/sampling-defaults.js";
import { routeTask } from "./task-routing.js";
import { HeldLease, HeldLeases } from "./held-leases.js";
import { recordBoxChoice } from "../../common/telemetry/request-tracing.js";
import type { ValidatedRequest } from "./validate-request.js";

export interface RouterOptions {
  /** This box's placement: the catalog (ListModels), and every lease unless `placementFor` is given. */
  placement: PlacementClient;
  /** More than one box: chooses the box whose placement leases each request (services/cluster). */
  placementFor?: PlacementResolver;
  routes: Record<string, string[]>;
  preferResident: boolean;
  logger: Logger;
  /** Attempts on other replicas (or after a reload) when a runner fails before the first token. */
  maxAttempts?: number;
  clock?: { now(): number };
  /** Options for the runner clients (telemetry: an interceptor that passes on the trace context). */
  runnerClientOptions?: ClientOptions;
}

/** Where a stream goes next: the relay writes events through it and waits when it asks. */
export type EventSink = (event: GenerateResponse) => void | Promise<void>;

interface Attempt {
  emittedText: string;
  emittedTokens: number;
  /** Tokens delivered by earlier runners of this request (resumed streams). */
  tokensBeforeRunner: number;
  firstTokenAtMs: number | undefined;
  lastTokenAtMs: number;
  queueMs: number;
  loadMs: number;
  failovers: number;
}

/**
 * The data plane: resolves a request to a model, holds a lease from placement,
 * relays the runner's token stream and fails over. Every exit ends the lease's stream: the
 * lease is then parked for the model's next request (held lease) or released.
 */
export class Router {
  private readonly runnerClients = new Map<string, RunnerDataClient>();
  private readonly heldLeases = new HeldLeases();
  private readonly contextSizes = new Map<string, number>();
  private readonly clock: { now(): number };
  private readonly maxAttempts: number;

  constructor(private readonly options: RouterOptions) {
    this.clock = options.clock ?? { now: () => performance.now() };
    this.maxAttempts = options.maxAttempts ?? 3;
  }

  close(): void {
    this.heldLeases.close();
    for (const client of this.runnerClients.values()) client.close();
    this.runnerClients.clear();
  }

  async listModels(): Promise<ModelInfo[]> {
    return new Promise((resolve, reject) =>
      this.options.placement.listModels({}, (error, response) => (error ? reject(fromServiceError(error)) : resolve(response.models))),
    );
  }

  /** Runs one request to completion, writing queued/loading/token/done events to `sink`. */
  async generate(request: ValidatedRequest, signal: AbortSignal, deadline: Date | undefined, sink: EventSink): Promise<void> {
    const receivedAtMs = this.clock.now();
    const model = await this.resolveModel(request);
    const contextSize = await this.knownContextSize(model);
    if (contextSize !== undefined && request.maxTokens > contextSize) throw this.overContext(request.maxTokens, model, contextSize);
    const attempt: Attempt = { failovers: 0, emittedText: "", emittedTokens: 0, tokensBeforeRunner: 0, firstTokenAtMs: undefined, lastTokenAtMs: 0, queueMs: 0, loadMs: 0 };
    const failedRunners = new Set<string>();
    const failedBoxes = new Set<string>();
    for (let tries = 1; ; tries++) {
      if (signal.aborted) throw cancelled("the client cancelled the request");
      // A warm model: a lease parked by an earlier request, no placement round trip.
      let lease = this.heldLeases.take(model, failedRunners, failedBoxes);
      if (lease && lease.box) {
        recordBoxChoice({ box: lease.box, address: lease.lease.runnerAddress, reason: "held_lease", detail: "a lease kept from an earlier request for this model", candidates: 1 });
      }
      if (!lease) {
        const target = await this.placementFor(model, failedBoxes);
        try {
          lease = await this.acquire(target, model, failedRunners, signal, deadline, sink);
        } catch (error) {
          // A box that cannot lease (gone, or its loads failed) is left for another one, before any token.
          if (!this.options.placementFor || asModelswapError(error)?.code !== GrpcStatus.UNAVAILABLE || tries >= this.maxAttempts || signal.aborted) throw error;
          failedBoxes.add(target.box);
          attempt.failovers++;
          this.options.logger.warn("box_failover", { model, box: target.box, error: (error as Error).message });
          continue;
        }
        attempt.queueMs += lease.lease.queueMs;
        attempt.loadMs += lease.lease.loadMs;
      }
      if (request.maxTokens > lease.lease.contextSize) {
        lease.end(LeaseOutcome.LEASE_OUTCOME_OK, this.clock.now());
        throw this.overContext(request.maxTokens, model, lease.lease.contextSize);
      }
      let outcome: "done" | "runner_failed";
      try {
        outcome = await this.relayFromRunner(request, lease.lease, attempt, signal, deadline, sink, receivedAtMs);
      } catch (error) {
        // An error the request caused (INVALID_ARGUMENT) leaves the runner fine, but the lease goes back: it is rare.
        lease.end(signal.aborted ? LeaseOutcome.LEASE_OUTCOME_CANCELLED : LeaseOutcome.LEASE_OUTCOME_RUNNER_FAILED, this.clock.now());
        throw error;
      }
      lease.end(outcome === "done" ? LeaseOutcome.LEASE_OUTCOME_OK : LeaseOutcome.LEASE_OUTCOME_RUNNER_FAILED, this.clock.now());
      if (outcome === "done") return;
      failedRunners.add(lease.lease.runnerId);
      failedBoxes.add(lease.box);
      attempt.failovers++;
      attempt.tokensBeforeRunner = attempt.emittedTokens;
      const beforeFirstToken = attempt.emittedTokens === 0;
      if (!beforeFirstToken && !request.resumable) {
        throw unavailable(
          `the runner serving "${model}" failed after ${attempt.emittedTokens} tokens were delivered; retry the request (set resumable to continue automatically)`,
        );
      }
      if (tries >= this.maxAttempts) {
        throw unavailable(`runners for "${model}" failed ${tries} times (${attempt.emittedTokens} tokens delivered); retry in a few seconds`, 2);
      }
      this.options.logger.warn("failover", { model, runner: lease.lease.runnerId, tokensDelivered: attempt.emittedTokens, resumable: request.resumable });
    }
  }

  /** The box to lease from: another than those that failed this request where one can serve it, else any. */
  private async placementFor(model: string, failedBoxes: ReadonlySet<string>) {
    const resolve = this.options.placementFor;
    if (!resolve) return { box: "", placement: this.options.placement };
    const target = (await resolve(model, failedBoxes)) ?? (failedBoxes.size > 0 ? await resolve(model, new Set()) : undefined);
    if (!target) throw unavailable(`no box in the cluster serves model "${model}" now; check modelswap ps --cluster and retry`, 2);
    return target;
  }

  /**
   * The model's context size from the catalog (cached; the catalog is fixed by config),
   * so that an impossible max_tokens is refused before it can cause a swap.
   */
  private async knownContextSize(model: string): Promise<number | undefined> {
    if (!this.contextSizes.has(model)) {
      try {
        for (const info of await this.listModels()) for (const name of [info.name, ...info.aliases]) this.contextSizes.set(name, info.contextSize);
      } catch {
        return undefined; // placement answers for itself when the lease is asked for
      }
    }
    return this.contextSizes.get(model);
  }

  private overContext(maxTokens: number, model: string, contextSize: number) {
    return invalidArgument(`max_tokens is ${maxTokens} but model "${model}" has a context of ${contextSize} tokens; lower max_tokens`);
  }

  private async resolveModel(request: ValidatedRequest): Promise<string> {
    if (request.model) return request.model;
    // Own properties only: a task named "constructor" or "__proto__" has no route.
    const chain = Object.hasOwn(this.options.routes, request.task) ? this.options.routes[request.task] : undefined;
    if (!chain) {
      const known = Object.keys(this.options.routes).join(", ") || "none configured";
      throw notFound(`task "${request.task}" has no route; known tasks: ${known}`);
    }
    const models = await this.listModels();
    const resident = new Set(models.filter((info) => info.state === ModelState.MODEL_STATE_RESIDENT).map((info) => info.name));
    return routeTask(chain.map((name) => ({ name, resident: resident.has(name) })), this.options.preferResident)!;
  }

  /**
   * Waits for a lease, relaying queue and load progress. The lease lasts as long as its
   * Acquire call: over this request's stream, and over later ones while it is parked.
   * The call is given no deadline: a parked lease outlives the request that asked for it.
   */
  private acquire(
    target: PlacementTarget,
    model: string,
    exclude: ReadonlySet<string>,
    signal: AbortSignal,
    deadline: Date | undefined,
    sink: EventSink,
  ): Promise<HeldLease> {
    return new Promise((resolve, reject) => {
      // No gRPC deadline on the call: placement ends the wait at the request's deadline (in the request).
      const call: ClientDuplexStream<AcquireMessage, AcquireEvent> = target.placement.acquire({});
      let held: HeldLease | undefined;
      let waitEnded = false;
      const endWait = () => {
        waitEnded = true;
        signal.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        call.cancel();
        endWait();
        reject(cancelled("the client cancelled the request"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      call.on("data", (event: AcquireEvent) => {
        const e = event.event;
        if (!e) return;
        if (e.$case === "queued") void sink({ event: { $case: "queued", value: e.value } });
        else if (e.$case === "loading") void sink({ event: { $case: "loading", value: e.value } });
        else if (e.$case === "granted" && !waitEnded) {
          endWait();
          held = new HeldLease(e.value, target.box, this.clock.now(), (message) => call.write(message), () => call.end(), this.heldLeases);
          resolve(held);
        } else if (e.$case === "revoke") held?.revoke();
      });
      call.on("error", (error: ServiceError) => {
        if (held) return held.lost(); // the lease ends with the call
        if (waitEnded) return;
        endWait();
        if (error.code === GrpcStatus.CANCELLED && signal.aborted) return reject(cancelled("the client cancelled the request"));
        if (error.code === GrpcStatus.DEADLINE_EXCEEDED) return reject(deadlineExceeded(`deadline passed while waiting for model "${model}" to load`));
        reject(isServiceError(error) ? fromServiceError(error) : error);
      });
      call.on("end", () => {
        if (held) return held.lost();
        if (waitEnded) return;
        endWait();
        reject(unavailable(`placement ended the wait for "${model}" without a lease; retry`));
      });
      call.write({ message: { $case: "request", value: { model, excludeRunners: [...exclude], waitDeadlineUnixMs: deadline?.getTime() ?? 0 } } });
    });
  }

  /** Streams from the leased runner. "runner_failed" when the runner broke (the caller decides failover). */
  private relayFromRunner(
    request: ValidatedRequest,
    lease: Lease,
    attempt: Attempt,
    signal: AbortSignal,
    deadline: Date | undefined,
    sink: EventSink,
    receivedAtMs: number,
  ): Promise<"done" | "runner_failed"> {
    const client = this.runnerClient(lease.runnerAddress);
    const input =
      request.input.kind === "prompt"
        ? { $case: "prompt" as const, value: request.input.prompt }
        : { $case: "chat" as const, value: { turns: request.input.turns } };
    const call = client.generate(
      {
        model: lease.model,
        input,
        maxTokens: request.maxTokens - attempt.emittedTokens,
        sampling: resolveSampling(request, lease),
        resumeText: attempt.emittedText,
      },
      leaseMetadata(lease),
      deadline ? { deadline } : {},
    );
    return new Promise((resolve, reject) => {
      let finished = false;
      const onAbort = () => call.cancel();
      signal.addEventListener("abort", onAbort, { once: true });
      const finish = (result: () => void) => {
        if (finished) return;
        finished = true;
        signal.removeEventListener("abort", onAbort);
        result();
      };
      call.on("data", (message: RunnerGenerateResponse) => {
        const event = message.event;
        if (!event) return;
        if (event.$case === "token") {
          const now = this.clock.now();
          attempt.firstTokenAtMs ??= now;
          attempt.lastTokenAtMs = now;
          attempt.emittedText += event.value.text;
          const delivered = attempt.tokensBeforeRunner + event.value.count;
          const tokens = delivered - attempt.emittedTokens;
          attempt.emittedTokens = delivered;
          const pending = sink({ event: { $case: "token", value: { text: event.value.text, tokens } } });
          if (pending) {
            call.pause();
            void pending.then(() => call.resume());
          }
          return;
        }
        if (event.$case === "done") {
          const done = event.value;
          const now = this.clock.now();
          const completionTokens = attempt.tokensBeforeRunner + done.completionTokens;
          const firstAt = attempt.firstTokenAtMs ?? now;
          const streamSeconds = (attempt.lastTokenAtMs - firstAt) / 1000;
          finish(() => {
            void sink({
              event: {
                $case: "done",
                value: {
                  finishReason: done.finishReason,
                  model: lease.model,
                  failovers: attempt.failovers,
                  usage: { promptTokens: done.promptTokens, completionTokens, cachedPromptTokens: done.cachedPromptTokens ?? 0 },
                  timings: {
                    queueMs: attempt.queueMs,
                    loadMs: attempt.loadMs,
                    ttftMs: firstAt - receivedAtMs,
                    totalMs: now - receivedAtMs,
                    tokensPerSecond: completionTokens > 1 && streamSeconds > 0 ? (completionTokens - 1) / streamSeconds : 0,
                  },
                },
              },
            });
            resolve("done");
          });
        }
      });
      call.on("error", (error: ServiceError) => {
        finish(() => {
          if (signal.aborted) return reject(cancelled("the client cancelled the request"));
          if (error.code === GrpcStatus.DEADLINE_EXCEEDED) return reject(deadlineExceeded(`deadline passed after ${attempt.emittedTokens} tokens`));
          if (error.code === GrpcStatus.INVALID_ARGUMENT) return reject(fromServiceError(error));
          this.options.logger.warn("runner_stream_failed", { runner: lease.runnerId, code: error.code, details: error.details });
          resolve("runner_failed");
        });
      });
      call.on("end", () => finish(() => resolve("runner_failed")));
    });
  }

  private runnerClient(address: string): RunnerDataClient {
    let client = this.runnerClients.get(address);
    if (!client) {
      client = new RunnerDataClient(address, credentials.createInsecure(), this.options.runnerClientOptions);
      this.runnerClients.set(address, client);
    }
    return client;
  }
}

/** The runner serves only holders of a lease: placement's token for it travels with the call. */
function leaseMetadata(lease: Lease): Metadata {
  const metadata = new Metadata();
  metadata.set(INTERNAL_METADATA.lease, lease.token);
  return metadata;
}

/** Request sampling over the model's defaults. */
function resolveSampling(request: ValidatedRequest, lease: Lease): RunnerSampling {
  const defaults = lease.defaultSampling ?? SAMPLING_DEFAULTS;
  const asked = request.sampling;
  return {
    temperature: asked?.temperature ?? defaults.temperature,
    topK: asked?.topK ?? defaults.topK,
    topP: asked?.topP ?? defaults.topP,
    minP: asked?.minP ?? defaults.minP,
    repeatPenalty: asked?.repeatPenalty ?? defaults.repeatPenalty,
    seed: asked?.seed,
    stop: asked?.stop ?? [],
    ignoreEos: asked?.ignoreEos ?? false,
  };
}
