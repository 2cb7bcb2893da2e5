import { Metadata, type ServiceError } from "@grpc/grpc-js";
import type { Config } from "../../common/config/config-types.js";
import { callUnary } from "../../common/grpc/call-unary.js";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { ModelState, type GenerateResponse } from "../../gen/modelswap/v1/inference.js";
import type { ResidencyEventRecord } from "../../services/placement/placement-types.js";
import { startLocalStack, type LocalStack } from "../lib/local-stack.js";
import { vmRssBytes } from "../lib/process-tree.js";

/**
 * One running stack (placement + gateway in this process, runner processes as children) with
 * what the report reads from it: every residency event, memory sampled over time, and clients
 * that time each token.
 */

const PROMPT = "Once upon a time";
/** Epoch milliseconds with performance.now()'s resolution. */
export const epochNow = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface MemorySample {
  /** Milliseconds since the session started. */
  t: number;
  /** VmRSS of every runner process, summed (/proc). */
  runnersRss: number;
  /** What placement charges: every runner's own bytes + the footprints of the models they hold. */
  charged: number;
  budget: number;
  resident: string[];
}

export interface StreamResult {
  model: string;
  ok: boolean;
  error: string;
  /** Epoch milliseconds (sub-millisecond resolution) at the call; comparable with residency events' timeMs. */
  startedAt: number;
  ttftMs: number;
  /** Epoch milliseconds of each token message and the tokens it carried (pieces may join a few). */
  tokenTimes: number[];
  tokenCounts: number[];
  tokens: number;
  /** From Done: completion tokens / time from first to last token. */
  tokensPerSecond: number;
  /** From Done: the model that answered (task routing), the load it waited for. */
  servedBy: string;
  loadMs: number;
  queueMs: number;
}

export interface StreamOptions {
  model?: string;
  task?: string;
  maxTokens: number;
  timeoutMs?: number;
  /** Ends the stream early (client cancel) when it resolves. */
  cancel?: Promise<unknown>;
  /** Called on each token message with the tokens received so far. */
  onToken?: (tokens: number) => void;
}

export class Session {
  readonly events: (ResidencyEventRecord & { t: number })[] = [];
  readonly samples: MemorySample[] = [];
  readonly startedAtMs = Date.now();
  private sampling = false;
  private sampler: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly stack: LocalStack,
    private readonly logEvent?: (line: string) => void,
  ) {}

  static async start(name: string, config: Config, options: { verbose?: boolean; logEvent?: (line: string) => void } = {}): Promise<Session> {
    let session: Session | undefined;
    const early: ResidencyEventRecord[] = [];
    const stack = await startLocalStack(config, {
      verbose: options.verbose,
      onEvent: (event) => (session ? session.record(event) : early.push(event)),
    });
    session = new Session(name, stack, options.logEvent);
    for (const event of early) session.record(event);
    return session;
  }

  private record(event: ResidencyEventRecord): void {
    this.events.push({ ...event, t: event.timeMs - this.startedAtMs });
    if (this.logEvent) {
      const { kind, timeMs, queueDepth, ...rest } = event;
      this.logEvent(`  ${this.name} +${((timeMs - this.startedAtMs) / 1000).toFixed(2)} s ${kind} ${JSON.stringify(rest)} q=${queueDepth}`);
    }
  }

  /** Milliseconds since the session started. */
  now(): number {
    return Date.now() - this.startedAtMs;
  }

  status(): Promise<StatusResponse> {
    return callUnary((done) => this.stack.admin.getStatus({}, done));
  }

  async load(model: string): Promise<number> {
    const response = await new Promise<{ loadMs: number }>((resolve, reject) =>
      this.stack.admin.loadModel({ model }, new Metadata(), { deadline: new Date(Date.now() + 300_000) }, (error, value) => (error ? reject(error) : resolve(value))),
    );
    return response.loadMs;
  }

  async unload(model: string): Promise<void> {
    await callUnary((done) => this.stack.admin.unloadModel({ model }, done));
    await this.waitUntil(async () => (await this.modelState(model)) === ModelState.MODEL_STATE_NOT_LOADED, 60_000, `${model} to unload`);
  }

  async pin(model: string, pinned: boolean): Promise<void> {
    await callUnary((done) => this.stack.admin.pinModel({ model, pinned }, done));
  }

  async modelState(model: string): Promise<ModelState | undefined> {
    return (await this.status()).models.find((entry) => entry.info?.name === model)?.info?.state;
  }

  async residentModels(): Promise<string[]> {
    return (await this.status()).models.filter((entry) => entry.info?.state === ModelState.MODEL_STATE_RESIDENT).map((entry) => entry.info!.name);
  }

  /** Polls `condition` every 50 ms; throws after `timeoutMs` naming what it waited for. */
  async waitUntil(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!(await condition())) {
      if (performance.now() > until) throw new Error(`${this.name}: gave up waiting for ${what} after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Until no runner is starting, loading, unloading or stopping (and the configured spares are up). */
  async settled(timeoutMs = 60_000): Promise<void> {
    await this.waitUntil(
      async () => {
        const status = await this.status();
        return status.runners.every(
          (runner) => (runner.state === "ready" || runner.state === "spare") && runner.models.every((hosted) => hosted.state === "ready"),
        );
      },
      timeoutMs,
      "runners to settle",
    );
  }

  /** Samples memory every `everyMs` until stop(). */
  startSampling(everyMs: number): void {
    if (this.sampling) return;
    this.sampling = true;
    this.sampler = (async () => {
      while (this.sampling) {
        try {
          this.samples.push(await this.sample());
        } catch {
          // the stack is stopping
        }
        await sleep(everyMs);
      }
    })();
  }

  async sample(): Promise<MemorySample> {
    const status = await this.status();
    const resident = status.models.filter((entry) => entry.info?.state === ModelState.MODEL_STATE_RESIDENT).map((entry) => entry.info!.name);
    return {
      t: this.now(),
      runnersRss: status.runners.reduce((sum, runner) => sum + vmRssBytes(runner.pid), 0),
      charged: status.runners.reduce((sum, runner) => sum + runner.baseBytes, 0) + status.residentBytes,
      budget: status.budgetBytes,
      resident,
    };
  }

  /** One Generate stream through the gateway, greedy, end-of-sequence ignored, every token timed. */
  generate(options: StreamOptions): Promise<StreamResult> {
    return new Promise((resolve) => {
      const startedAt = epochNow();
      const result: StreamResult = {
        model: options.model ?? `task:${options.task}`,
        ok: false,
        error: "",
        startedAt,
        ttftMs: Number.NaN,
        tokenTimes: [],
        tokenCounts: [],
        tokens: 0,
        tokensPerSecond: Number.NaN,
        servedBy: "",
        loadMs: 0,
        queueMs: 0,
      };
      let settled = false;
      const finish = (error: string) => {
        if (settled) return;
        settled = true;
        result.error = error;
        result.ok = error === "";
        resolve(result);
      };
      const call = this.stack.inference.generate(
        {
          model: options.model ?? "",
          task: options.task ?? "",
          prompt: PROMPT,
          maxTokens: options.maxTokens,
          resumable: false,
          sampling: { temperature: 0, repeatPenalty: 1, ignoreEos: true, stop: [] },
        },
        { deadline: new Date(Date.now() + (options.timeoutMs ?? 300_000)) },
      );
      let cancelled = false;
      options.cancel?.then(() => {
        cancelled = true;
        call.cancel();
      });
      call.on("data", (message: GenerateResponse) => {
        const event = message.event;
        if (event?.$case === "token") {
          const now = epochNow();
          if (result.tokenTimes.length === 0) result.ttftMs = now - startedAt;
          result.tokenTimes.push(now);
          result.tokenCounts.push(Math.max(1, event.value.tokens));
          result.tokens += Math.max(1, event.value.tokens);
          options.onToken?.(result.tokens);
        } else if (event?.$case === "done") {
          result.servedBy = event.value.model;
          result.loadMs = event.value.timings?.loadMs ?? 0;
          result.queueMs = event.value.timings?.queueMs ?? 0;
          result.tokens = event.value.usage?.completionTokens ?? result.tokens;
          result.tokensPerSecond = event.value.timings?.tokensPerSecond ?? Number.NaN;
        }
      });
      call.on("error", (error: ServiceError) => finish(cancelled ? "" : `${error.code} ${error.details}`));
      call.on("end", () => finish(result.servedBy || cancelled ? "" : "stream ended without done"));
    });
  }

  async stop(): Promise<void> {
    this.sampling = false;
    await this.sampler;
    await this.stack.stop();
  }
}
