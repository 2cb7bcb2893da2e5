import { diag, DiagLogLevel, trace, type Attributes, type DiagLogger } from "@opentelemetry/api";
import { setGlobalErrorHandler } from "@opentelemetry/core";
import type { MetricReader } from "@opentelemetry/sdk-metrics";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  NoopSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { createLogger, setLogEnricher, type Logger } from "../logger.js";
import { readTelemetryEnv, type TelemetryEnv } from "./telemetry-env.js";

export type ServiceRole = "gateway" | "placement" | "runner";

/** Checks a scrape's Authorization header: undefined lets it in, else the HTTP status and why. */
export type MetricsAuthorizer = (authorization: string | undefined) => { status: 401 | 403; message: string } | undefined;

export interface TelemetryOptions {
  /** The process's role; the OTel service.name is `modelswap-<role>`. */
  role: ServiceRole;
  logger?: Logger;
  /** Serve Prometheus /metrics on host:port (port 0 or undefined: no endpoint). */
  metrics?: { host: string; port: number; authorize?: MetricsAuthorizer };
  /** Extra resource attributes (e.g. the runner id). */
  resourceAttributes?: Attributes;
  /** Defaults to readTelemetryEnv(). */
  env?: TelemetryEnv;
}

export interface Telemetry {
  /** Whether spans leave the process (an OTLP endpoint is set). */
  exportingTraces: boolean;
  /** http://host:port/metrics when a metrics endpoint was asked for. */
  metricsUrl: string | undefined;
}

/** Set when startTelemetry is first called (before its imports resolve): it runs once. */
let started = false;
/** Flushes and stops what startTelemetry started; undefined until it ran. */
let stopSdk: (() => Promise<void>) | undefined;
let shuttingDown: Promise<void> | undefined;
let reportExportFailure: (error: unknown) => void = () => {};

/**
 * Starts the OpenTelemetry SDK for this process: a tracer provider with a batch span
 * processor exporting OTLP when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set (a no-op
 * processor otherwise, so trace context still flows and logs still carry trace ids),
 * W3C trace-context propagation, and the Prometheus /metrics endpoint when asked.
 * Call once, before serving; shutdownTelemetry() flushes.
 *
 * With nothing to export (no endpoint, no /metrics) it loads only a tracer provider
 * (sdk-trace-node: context manager, propagators, sampler): the NodeSDK, the exporters and the
 * metrics SDK are imported only when used. Measured on the 2-core box: importing this module
 * with all of them cost a process ~10 MB more RSS than with the tracer provider alone.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const env = options.env ?? readTelemetryEnv();
  const logger = options.logger ?? createLogger(options.role);
  if (started || env.disabled) return { exportingTraces: false, metricsUrl: undefined };
  started = true;

  diag.setLogger(diagLogger(logger), env.sdkLogLevel ? diagLevel(env.sdkLogLevel) : DiagLogLevel.NONE);
  let warned = false;
  reportExportFailure = (error) => {
    // One line, not one per failed batch: a collector that is down must not flood the logs.
    if (warned) return;
    warned = true;
    logger.warn("telemetry_export_failed", { endpoint: env.tracesEndpoint, error: error instanceof Error ? error.message : String(error) });
  };
  setGlobalErrorHandler((error) => reportExportFailure(error));

  const exporter = env.tracesEndpoint && !env.tracesExporterNone ? await traceExporter(env) : undefined;
  const port = options.metrics?.port ?? 0;
  const host = options.metrics?.host ?? "127.0.0.1";
  const serviceName = `modelswap-${options.role}`;
  const resource = defaultResource().merge(resourceFromAttributes({ "service.namespace": "modelswap", ...options.resourceAttributes }));

  if (!exporter && port <= 0) {
    // Nothing leaves the process: trace context and trace ids only.
    const { NodeTracerProvider } = await import("@opentelemetry/sdk-trace-node");
    const provider = new NodeTracerProvider({
      resource: resource.merge(resourceFromAttributes({ "service.name": serviceName })),
      sampler: sampler(env),
      spanProcessors: [new NoopSpanProcessor()],
    });
    provider.register(); // AsyncLocalStorage context manager, OTEL_PROPAGATORS (default W3C trace context + baggage)
    stopSdk = () => provider.shutdown();
  } else {
    const [{ NodeSDK }, prometheus] = await Promise.all([import("@opentelemetry/sdk-node"), prometheusReaders(port, host, logger, options.metrics?.authorize)]);
    const sdk = new NodeSDK({
      serviceName,
      resource,
      spanProcessors: [exporter ? new BatchSpanProcessor(exporter, env.batch) : new NoopSpanProcessor()],
      sampler: sampler(env),
      metricReaders: prometheus.readers,
      logRecordProcessors: [],
      instrumentations: [],
    });
    sdk.start();
    stopSdk = async () => {
      await Promise.all([sdk.shutdown(), prometheus.close()]);
    };
  }

  setLogEnricher(() => {
    const span = trace.getActiveSpan();
    if (!span) return {};
    const context = span.spanContext();
    return trace.isSpanContextValid(context) ? { traceId: context.traceId, spanId: context.spanId } : {};
  });
  const metricsUrl = port > 0 ? `http://${host.includes(":") ? `[${host}]` : host}:${port}/metrics` : undefined;
  logger.info("telemetry_started", { traces: exporter ? env.tracesEndpoint : "not exported", protocol: exporter ? env.protocol : undefined, metrics: metricsUrl ?? "off" });
  return { exportingTraces: exporter !== undefined, metricsUrl };
}

/**
 * The Prometheus /metrics endpoint on host:port (none for port 0): the exporter's handler
 * behind our own HTTP server, which asks `authorize` first (API keys with the metrics or
 * admin scope, when auth.keys is set). `close` ends the server.
 */
async function prometheusReaders(port: number, host: string, logger: Logger, authorize: MetricsAuthorizer | undefined): Promise<{ readers: MetricReader[]; close: () => Promise<void> }> {
  if (port <= 0) return { readers: [], close: async () => undefined };
  const [{ PrometheusExporter }, { createServer }] = await Promise.all([import("@opentelemetry/exporter-prometheus"), import("node:http")]);
  const exporter = new PrometheusExporter({ endpoint: "/metrics", withoutScopeInfo: true, preventServerStart: true });
  const server = createServer((request, response) => {
    if (request.method !== "GET" || new URL(request.url ?? "/", "http://metrics").pathname !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: scrape GET /metrics\n");
      return;
    }
    const refusal = authorize?.(request.headers.authorization);
    if (refusal) {
      response.writeHead(refusal.status, { "content-type": "text/plain", ...(refusal.status === 401 ? { "www-authenticate": "Bearer" } : {}) }).end(refusal.message + "\n");
      return;
    }
    exporter.getMetricsRequestHandler(request, response);
  });
  server.on("error", (error) => logger.error("metrics_listen_failed", { host, port, error }));
  server.listen(port, host);
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // a scraper's kept-alive connection must not hold the exit up
    });
  return { readers: [exporter], close };
}

/** The /metrics endpoint of a role: placement on telemetry.metrics_port, the gateway on metrics_port + 1 (0 = none). */
export function metricsEndpoint(telemetry: { metricsPort: number; metricsHost: string }, role: "gateway" | "placement"): { host: string; port: number } {
  if (telemetry.metricsPort <= 0) return { host: telemetry.metricsHost, port: 0 };
  return { host: telemetry.metricsHost, port: telemetry.metricsPort + (role === "gateway" ? 1 : 0) };
}

/** Flushes pending spans and stops the SDK (and the /metrics server); at most `timeoutMs`. Safe to call more than once. */
export function shutdownTelemetry(timeoutMs = 3000): Promise<void> {
  const stop = stopSdk;
  if (!stop) return Promise.resolve();
  shuttingDown ??= new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    stop().then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (error: unknown) => {
        clearTimeout(timer);
        reportExportFailure(error);
        resolve();
      },
    );
  });
  return shuttingDown;
}

/** process.exit after the batch span processor has flushed (a plain exit loses the last spans). */
export async function exitAfterFlush(code: number): Promise<never> {
  await shutdownTelemetry();
  process.exit(code);
}

async function traceExporter(env: TelemetryEnv): Promise<SpanExporter> {
  const endpoint = env.tracesEndpoint!;
  if (env.protocol === "grpc") {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-grpc");
    return new OTLPTraceExporter({ url: endpoint, timeoutMillis: env.batch.exportTimeoutMillis });
  }
  // http/protobuf: the generic endpoint gets the signal path appended (OTLP spec); a traces-specific one is used as is.
  const url = env.tracesEndpointIsSignalSpecific ? endpoint : `${endpoint.replace(/\/+$/, "")}/v1/traces`;
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter({ url, timeoutMillis: env.batch.exportTimeoutMillis });
}

function sampler(env: TelemetryEnv): Sampler {
  switch (env.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(env.samplerRatio);
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(env.samplerRatio) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

function diagLevel(name: string): DiagLogLevel {
  const levels: Record<string, DiagLogLevel> = {
    none: DiagLogLevel.NONE,
    error: DiagLogLevel.ERROR,
    warn: DiagLogLevel.WARN,
    info: DiagLogLevel.INFO,
    debug: DiagLogLevel.DEBUG,
    verbose: DiagLogLevel.VERBOSE,
    all: DiagLogLevel.ALL,
  };
  return levels[name.toLowerCase()] ?? DiagLogLevel.WARN;
}

function diagLogger(logger: Logger): DiagLogger {
  const line = (write: (event: string, fields: Record<string, unknown>) => void) => (message: string, ...args: unknown[]) =>
    write("otel_sdk", { message, ...(args.length > 0 ? { args } : {}) });
  return {
    error: line(logger.error),
    warn: line(logger.warn),
    info: line(logger.info),
    debug: line(logger.info),
    verbose: line(logger.info),
  };
}
