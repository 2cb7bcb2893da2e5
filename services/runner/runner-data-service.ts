import type { ServerWritableStream } from "@grpc/grpc-js";
import { failedPrecondition, invalidArgument, unauthenticated } from "../../common/errors.js";
import { INTERNAL_METADATA, singleValue } from "../../common/internal-auth/internal-metadata.js";
import { serverStreamHandler } from "../../common/grpc/handlers.js";
import { writeWithBackpressure } from "../../common/grpc/stream-writer.js";
import { SAMPLING_DEFAULTS, SAMPLING_RANGES } from "../../common/config/sampling-defaults.js";
import type { Logger } from "../../common/logger.js";
import { traceRunnerGenerate } from "../../common/telemetry/runner-tracing.js";
import { RunnerDataService, type RunnerGenerateRequest, type RunnerGenerateResponse } from "../../gen/modelswap/v1/runner.js";
import type { GenerateInput, LoadedModel } from "./engine.js";
import { TokenCoalescer } from "./token-coalescer.js";

/** Text generated within this window after a message joins the next one (see TokenCoalescer). */
const TOKEN_WINDOW_MS = 5;

export interface RunnerDataDeps {
  logger: Logger;
  /** The loaded model of that name, if this runner holds it. */
  model(name: string): LoadedModel | undefined;
  /** The models it holds (for messages). */
  modelNames(): string[];
  /** Why `token` (the `x-modelswap-lease` metadata) does not open a stream on `model` here, or undefined when it does. */
  leaseProblem(token: string | undefined, model: string): string | undefined;
  onStreamStart(): void;
  onStreamEnd(): void;
  onToken(): void;
}

/**
 * The runner's token stream: one gRPC call = one sequence of one of the models it holds.
 * A call must carry the token of a lease placement granted on this runner and that model
 * (UNAUTHENTICATED otherwise) and sampling values in range (INVALID_ARGUMENT otherwise).
 */
export function runnerDataService(deps: RunnerDataDeps) {
  const generate = serverStreamHandler(deps.logger, (call: ServerWritableStream<RunnerGenerateRequest, RunnerGenerateResponse>, signal) =>
    // `runner.generate` span, a child of the caller's trace context (from the call's metadata).
    traceRunnerGenerate(call.metadata, call.request, async (span) => {
    const request = call.request;
    const leaseProblem = deps.leaseProblem(singleValue(call.metadata, INTERNAL_METADATA.lease), request.model);
    if (leaseProblem) {
      throw unauthenticated(`this runner serves only holders of a lease from its placement (the call had ${leaseProblem}); clients call the gateway`);
    }
    const model = deps.model(request.model);
    if (!model) {
      const held = deps.modelNames();
      throw failedPrecondition(`this runner does not hold "${request.model}" (it holds ${held.length > 0 ? held.join(", ") : "no model"}); ask placement for a lease again`);
    }
    const input = toGenerateInput(request);
    deps.onStreamStart();
    try {
      let reported = 0;
      const tokens = new TokenCoalescer((text, count) => writeWithBackpressure(call, { event: { $case: "token", value: { text, count } } }), TOKEN_WINDOW_MS);
      const outcome = await model.generate(input, signal, (text, count) => {
        for (; reported < count; reported++) deps.onToken();
        return tokens.push(text, count);
      });
      span.done(outcome);
      if (signal.aborted) return;
      await tokens.flush();
      call.write({
        event: {
          $case: "done",
          value: {
            finishReason: outcome.finishReason,
            promptTokens: outcome.promptTokens,
            cachedPromptTokens: outcome.cachedPromptTokens,
            completionTokens: outcome.completionTokens,
            firstTokenMs: outcome.firstTokenMs,
            generateMs: outcome.generateMs,
          },
        },
      });
    } catch (error) {
      if (error instanceof RangeError) throw invalidArgument(error.message);
      throw error;
    } finally {
      deps.onStreamEnd();
    }
  }));
  return { definition: RunnerDataService, implementation: { generate } };
}

/** The request's sampling with defaults applied; throws INVALID_ARGUMENT for a value out of range (NaN included). */
function toGenerateInput(request: RunnerGenerateRequest): GenerateInput {
  // The router sends fully resolved sampling; a request without any gets the project's defaults.
  const s = request.sampling ?? { ...SAMPLING_DEFAULTS, seed: undefined, stop: [], ignoreEos: false };
  // SamplingSettings has `seed` always present (undefined when unset), the wire type optional.
  const sampling = { temperature: s.temperature, topK: s.topK, topP: s.topP, minP: s.minP, repeatPenalty: s.repeatPenalty, seed: s.seed, stop: s.stop, ignoreEos: s.ignoreEos };
  // The ranges config allows (the gateway's are within them).
  const range = (name: string, value: number, { min, max }: { min: number; max: number }) => {
    if (!(value >= min && value <= max)) throw invalidArgument(`sampling.${name} is ${value}; use a value from ${min} to ${max}`);
  };
  range("temperature", sampling.temperature, SAMPLING_RANGES.temperature);
  range("top_k", sampling.topK, { min: 0, max: 2 ** 31 - 1 });
  range("top_p", sampling.topP, SAMPLING_RANGES.topP);
  range("min_p", sampling.minP, SAMPLING_RANGES.minP);
  range("repeat_penalty", sampling.repeatPenalty, SAMPLING_RANGES.repeatPenalty);
  if (request.maxTokens < 0) throw invalidArgument(`max_tokens is ${request.maxTokens}; use a positive number`);
  const common = { resumeText: request.resumeText, maxTokens: request.maxTokens, sampling };
  if (request.input?.$case === "chat") return { kind: "chat", turns: request.input.value.turns, ...common };
  return { kind: "prompt", prompt: request.input?.$case === "prompt" ? request.input.value : "", ...common };
}
