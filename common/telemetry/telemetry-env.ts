/**
 * Telemetry settings from the standard OpenTelemetry environment variables: the one
 * place modelswap reads them (gateway, placement and runner processes alike; runners
 * inherit placement's environment). Everything else comes from the config file
 * (telemetry.metrics_port / metrics_host).
 *
 * Traces are exported only when an OTLP endpoint is set; without one, spans are still
 * made (trace ids in logs, context passed on to the next process) but none leave the process.
 */
export type OtlpProtocol = "grpc" | "http/protobuf";
export type SamplerName = "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";

export interface TelemetryEnv {
  /** OTEL_SDK_DISABLED=true: no SDK at all (no spans, no trace ids, no /metrics). */
  disabled: boolean;
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT; undefined = do not export. */
  tracesEndpoint: string | undefined;
  /** True when it came from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is; the generic one gets /v1/traces for http/protobuf). */
  tracesEndpointIsSignalSpecific: boolean;
  /**
   * OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL. Default "grpc"
   * (our deployments point at a collector's or Jaeger's port 4317).
   */
  protocol: OtlpProtocol;
  /** OTEL_TRACES_EXPORTER=none turns export off even with an endpoint. */
  tracesExporterNone: boolean;
  /** OTEL_TRACES_SAMPLER (default parentbased_always_on) and OTEL_TRACES_SAMPLER_ARG (ratio, default 1). */
  sampler: SamplerName;
  samplerRatio: number;
  /** OTEL_BSP_*: the batch span processor. */
  batch: { scheduledDelayMillis: number; exportTimeoutMillis: number; maxExportBatchSize: number; maxQueueSize: number };
  /** OTEL_LOG_LEVEL: the SDK's own diagnostics (default: warnings and errors are dropped as well, so a missing collector never spams logs). */
  sdkLogLevel: string | undefined;
}

const SAMPLERS: readonly SamplerName[] = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

export function readTelemetryEnv(env: NodeJS.ProcessEnv = process.env): TelemetryEnv {
  const text = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const number = (name: string, fallback: number, min: number) => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    return Number.isFinite(value) && value >= min ? value : fallback;
  };
  const protocolRaw = (text("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? text("OTEL_EXPORTER_OTLP_PROTOCOL") ?? "grpc").toLowerCase();
  const samplerRaw = (text("OTEL_TRACES_SAMPLER") ?? "parentbased_always_on").toLowerCase();
  const ratio = number("OTEL_TRACES_SAMPLER_ARG", 1, 0);
  return {
    disabled: text("OTEL_SDK_DISABLED")?.toLowerCase() === "true",
    tracesEndpoint: text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? text("OTEL_EXPORTER_OTLP_ENDPOINT"),
    tracesEndpointIsSignalSpecific: text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") !== undefined,
    protocol: protocolRaw === "http/protobuf" ? "http/protobuf" : "grpc",
    tracesExporterNone: (text("OTEL_TRACES_EXPORTER") ?? "").toLowerCase().split(",").map((name) => name.trim()).includes("none"),
    sampler: (SAMPLERS as readonly string[]).includes(samplerRaw) ? (samplerRaw as SamplerName) : "parentbased_always_on",
    samplerRatio: Math.min(1, ratio),
    batch: {
      scheduledDelayMillis: number("OTEL_BSP_SCHEDULE_DELAY", 1000, 0),
      exportTimeoutMillis: number("OTEL_BSP_EXPORT_TIMEOUT", 10_000, 1),
      maxExportBatchSize: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1),
      maxQueueSize: number("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1),
    },
    sdkLogLevel: text("OTEL_LOG_LEVEL"),
  };
}
