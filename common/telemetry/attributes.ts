import { trace } from "@opentelemetry/api";

/** The tracer every modelswap span comes from. */
export const tracer = () => trace.getTracer("modelswap");

/** Span names (one trace per request: generate > placement.acquire > ... > runner.generate). */
export const SPAN = {
  generate: "generate",
  acquire: "placement.acquire",
  queueWait: "queue.wait",
  evict: "model.evict",
  unload: "model.unload",
  load: "model.load",
  runnerGenerate: "runner.generate",
} as const;

/** OpenTelemetry GenAI semantic-convention attributes. */
export const GEN_AI = {
  operationName: "gen_ai.operation.name",
  providerName: "gen_ai.provider.name",
  requestModel: "gen_ai.request.model",
  requestMaxTokens: "gen_ai.request.max_tokens",
  requestTemperature: "gen_ai.request.temperature",
  responseModel: "gen_ai.response.model",
  responseFinishReasons: "gen_ai.response.finish_reasons",
  usageInputTokens: "gen_ai.usage.input_tokens",
  usageOutputTokens: "gen_ai.usage.output_tokens",
} as const;

/** modelswap's own attributes. */
export const ATTR = {
  task: "modelswap.task",
  model: "modelswap.model",
  runnerId: "modelswap.runner.id",
  leaseId: "modelswap.lease.id",
  queuePosition: "modelswap.queue.position",
  queueMs: "modelswap.queue_ms",
  loadMs: "modelswap.load_ms",
  ttftMs: "modelswap.ttft_ms",
  tokensPerSecond: "modelswap.tokens_per_second",
  evictedModel: "modelswap.evict.model",
  evictReason: "modelswap.evict.reason",
  evictPolicy: "modelswap.evict.policy",
  evictForModel: "modelswap.evict.for_model",
  evictBytesFreed: "modelswap.evict.bytes_freed",
  rssFreedBytes: "modelswap.runner.rss_freed_bytes",
  rssBytes: "modelswap.runner.rss_bytes",
  unloadReason: "modelswap.unload.reason",
  loadPath: "modelswap.load.path",
  loadFileBytes: "modelswap.load.file_bytes",
  loadMeasuredBytes: "modelswap.load.measured_bytes",
  loadSource: "modelswap.load.source",
  loadDurationMs: "modelswap.load.duration_ms",
  loadBytesPerSecond: "modelswap.load.bytes_per_second",
  loadModelMs: "modelswap.load.model_ms",
  loadContextMs: "modelswap.load.context_ms",
  loadWarmUpMs: "modelswap.load.warm_up_ms",
  grpcStatus: "rpc.grpc.status_code",
  box: "modelswap.box",
  boxAddress: "modelswap.box.address",
  boxReason: "modelswap.box.reason",
  boxDetail: "modelswap.box.detail",
  boxCandidates: "modelswap.box.candidates",
} as const;

/** What the gateway calls each public RPC in gen_ai.operation.name. */
export const OPERATION = { generate: "text_completion", chat: "chat" } as const;
