import type { Metadata } from "@grpc/grpc-js";
import { context, metrics, SpanKind, SpanStatusCode, trace, type Attributes, type Counter, type Histogram, type Span } from "@opentelemetry/api";
import { ModelswapError, isServiceError } from "../errors.js";
import type { GenerateResponse } from "../../gen/modelswap/v1/inference.js";
import { ATTR, GEN_AI, SPAN, tracer } from "./attributes.js";
import { extractContext } from "./propagation.js";

export interface GenerateSpanInfo {
  /** gen_ai.operation.name: "text_completion" (Generate) or "chat" (Chat). */
  operation: string;
  /** The model asked for (name or alias); empty when routed by task. */
  model: string;
  task: string;
  maxTokens: number;
  temperature?: number;
  /** A catalog name for a requested name or alias, else a fixed label: metric labels never carry user input. */
  modelLabel: (nameOrAlias: string) => string;
}

/** Gateway instruments, made on first use (after the SDK has registered its meter provider). */
interface GatewayInstruments {
  requests: Counter;
  ttft: Histogram;
  duration: Histogram;
  generatedTokens: Counter;
  promptTokens: Counter;
  tokensPerSecond: Histogram;
}
let instruments: GatewayInstruments | undefined;
function gatewayInstruments(): GatewayInstruments {
  if (instruments) return instruments;
  const meter = metrics.getMeter("modelswap");
  instruments = {
    requests: meter.createCounter("modelswap_requests", { description: "Generate/Chat requests by served model, operation and gRPC status" }),
    ttft: meter.createHistogram("modelswap_ttft_seconds", {
      description: "Time from request receipt to the first token (includes queue wait and model load)",
      unit: "s",
      advice: { explicitBucketBoundaries: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] },
    }),
    duration: meter.createHistogram("modelswap_request_duration_seconds", {
      description: "Whole request time",
      unit: "s",
      advice: { explicitBucketBoundaries: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] },
    }),
    generatedTokens: meter.createCounter("modelswap_generated_tokens", { description: "Completion tokens delivered to clients" }),
    promptTokens: meter.createCounter("modelswap_prompt_tokens", { description: "Prompt tokens processed" }),
    tokensPerSecond: meter.createHistogram("modelswap_decode_tokens_per_second", {
      description: "Decode rate of each request after its first token",
      advice: { explicitBucketBoundaries: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000] },
    }),
  };
  return instruments;
}

/** Registers the gateway's instruments (call after the SDK started) so /metrics lists them before the first request. */
export function registerGatewayMetrics(): void {
  gatewayInstruments();
}

/**
 * The root `generate` span of a request (a child of the client's traceparent if it sent
 * one). `run` executes with the span active, so the placement and runner calls it makes
 * carry its context; `observe` is given every event streamed to the client.
 */
export async function traceGenerate(
  metadata: Metadata | undefined,
  info: GenerateSpanInfo,
  run: (observe: (event: GenerateResponse) => void) => Promise<void>,
): Promise<void> {
  const attributes: Attributes = {
    [GEN_AI.operationName]: info.operation,
    [GEN_AI.providerName]: "modelswap",
    [GEN_AI.requestMaxTokens]: info.maxTokens,
  };
  if (info.model) attributes[GEN_AI.requestModel] = info.model;
  if (info.task) attributes[ATTR.task] = info.task;
  if (info.temperature !== undefined) attributes[GEN_AI.requestTemperature] = info.temperature;
  const span = tracer().startSpan(SPAN.generate, { kind: SpanKind.SERVER, attributes }, extractContext(metadata));
  const started = performance.now();
  // Known once a catalog model serves; "unknown" for unknown names and requests that fail before routing.
  let servedModel = info.modelLabel(info.model);
  let sawToken = false;
  let sawLoading = false;
  const observe = (event: GenerateResponse) => {
    const e = event.event;
    if (!e) return;
    if (e.$case === "queued") span.addEvent("queued", { [ATTR.queuePosition]: e.value.position });
    else if (e.$case === "loading" && !sawLoading) {
      sawLoading = true;
      span.addEvent("loading", { [ATTR.model]: e.value.model });
    } else if (e.$case === "token" && !sawToken) {
      sawToken = true;
      span.addEvent("first_token");
    } else if (e.$case === "done") {
      servedModel = info.modelLabel(e.value.model || info.model);
      // Tokens that never became text (a partial multi-byte character) still count as the first token.
      if (!sawToken && (e.value.usage?.completionTokens ?? 0) > 0) {
        sawToken = true;
        span.addEvent("first_token");
      }
      recordDone(span, e.value, servedModel);
    }
  };
  let code = 0;
  try {
    await context.with(trace.setSpan(context.active(), span), () => run(observe));
    span.setStatus({ code: SpanStatusCode.OK });
  } catch (error) {
    code = statusCode(error);
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    span.setAttribute(ATTR.grpcStatus, code);
    span.end();
    const labels = { model: servedModel, operation: info.operation };
    gatewayInstruments().requests.add(1, { ...labels, code: String(code) });
    gatewayInstruments().duration.record((performance.now() - started) / 1000, labels);
  }
}

/** Which box serves a request and why (more than one box: services/cluster/cluster-placements.ts). */
export interface BoxChoiceInfo {
  box: string;
  address: string;
  /** resident | loading | load_claimed | free_memory | eviction_cost | queue | local | held_lease */
  reason: string;
  detail: string;
  /** Boxes that could have served it. */
  candidates: number;
}

/**
 * Puts the box chosen for the active request on its `generate` span (the last choice
 * stands: after a failover, the box that served), with an event per choice.
 */
export function recordBoxChoice(choice: BoxChoiceInfo): void {
  const span = trace.getActiveSpan();
  if (!span) return;
  const attributes = {
    [ATTR.box]: choice.box,
    [ATTR.boxAddress]: choice.address,
    [ATTR.boxReason]: choice.reason,
    [ATTR.boxDetail]: choice.detail,
    [ATTR.boxCandidates]: choice.candidates,
  };
  span.setAttributes(attributes);
  span.addEvent("box_chosen", attributes);
}

function recordDone(span: Span, done: Extract<NonNullable<GenerateResponse["event"]>, { $case: "done" }>["value"], model: string): void {
  const usage = done.usage;
  const timings = done.timings;
  span.setAttributes({
    [GEN_AI.responseModel]: done.model,
    [GEN_AI.responseFinishReasons]: [done.finishReason],
    [GEN_AI.usageInputTokens]: usage?.promptTokens ?? 0,
    [GEN_AI.usageOutputTokens]: usage?.completionTokens ?? 0,
    [ATTR.queueMs]: timings?.queueMs ?? 0,
    [ATTR.loadMs]: timings?.loadMs ?? 0,
    [ATTR.ttftMs]: timings?.ttftMs ?? 0,
    [ATTR.tokensPerSecond]: timings?.tokensPerSecond ?? 0,
  });
  const labels = { model };
  const meters = gatewayInstruments();
  if (usage) {
    meters.generatedTokens.add(usage.completionTokens, labels);
    meters.promptTokens.add(usage.promptTokens, labels);
  }
  if (timings && (usage?.completionTokens ?? 0) > 0) meters.ttft.record(timings.ttftMs / 1000, labels);
  if (timings && timings.tokensPerSecond > 0) meters.tokensPerSecond.record(timings.tokensPerSecond, labels);
}

function statusCode(error: unknown): number {
  if (error instanceof ModelswapError) return error.code;
  if (isServiceError(error)) return error.code;
  return 2; // UNKNOWN
}
