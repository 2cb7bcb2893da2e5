import type { Metadata } from "@grpc/grpc-js";
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { RunnerGenerateRequest } from "../../gen/modelswap/v1/runner.js";
import { ATTR, GEN_AI, OPERATION, SPAN, tracer } from "./attributes.js";
import { extractContext } from "./propagation.js";

export interface RunnerGenerateTrace {
  /** The engine's outcome: usage attributes, and the `first_token` event at the time the engine produced it. */
  done(outcome: { finishReason: string; promptTokens: number; completionTokens: number; firstTokenMs: number; generateMs: number }): void;
}

/**
 * The runner's `runner.generate` span, a child of the router's context (the gateway's
 * `generate` span) taken from the call's metadata. `run` executes with it active.
 */
export async function traceRunnerGenerate<T>(metadata: Metadata | undefined, request: RunnerGenerateRequest, run: (trace: RunnerGenerateTrace) => Promise<T>): Promise<T> {
  const span = tracer().startSpan(
    SPAN.runnerGenerate,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [GEN_AI.operationName]: request.input?.$case === "chat" ? OPERATION.chat : OPERATION.generate,
        [GEN_AI.providerName]: "modelswap",
        [GEN_AI.requestModel]: request.model,
        [GEN_AI.requestMaxTokens]: request.maxTokens,
        ...(request.sampling ? { [GEN_AI.requestTemperature]: request.sampling.temperature } : {}),
      },
    },
    extractContext(metadata),
  );
  const handle: RunnerGenerateTrace = {
    done: (outcome) => {
      // Timed from the engine's own clock: a token can be produced before any text is
      // sent (a piece of a multi-byte character), so the first write would be late.
      if (outcome.completionTokens > 0) {
        span.addEvent("first_token", {}, new Date(Date.now() - Math.max(0, outcome.generateMs - outcome.firstTokenMs)));
      }
      span.setAttributes({
        [GEN_AI.responseModel]: request.model,
        [GEN_AI.responseFinishReasons]: [outcome.finishReason],
        [GEN_AI.usageInputTokens]: outcome.promptTokens,
        [GEN_AI.usageOutputTokens]: outcome.completionTokens,
        [ATTR.ttftMs]: outcome.firstTokenMs,
        [ATTR.tokensPerSecond]:
          outcome.completionTokens > 1 && outcome.generateMs > outcome.firstTokenMs
            ? ((outcome.completionTokens - 1) * 1000) / (outcome.generateMs - outcome.firstTokenMs)
            : 0,
      });
    },
  };
  try {
    const result = await context.with(trace.setSpan(context.active(), span), () => run(handle));
    span.setStatus({ code: SpanStatusCode.OK });
    return result;
  } catch (error) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    span.end();
  }
}
