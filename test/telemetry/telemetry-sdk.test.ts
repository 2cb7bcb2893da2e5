import assert from "node:assert/strict";
import path from "node:path";
import { readTelemetryEnv } from "../../common/telemetry/telemetry-env.js";
import { startOtlpReceiver, type OtlpReceiver } from "../support/otlp-receiver.js";
import { projectRoot } from "../support/paths.js";
import { freePortPair, jsonLine, startProcess } from "../support/processes.js";

const dist = (file: string) => path.join(projectRoot, "dist", file);

/** A tiny process that starts telemetry like a service does, logs inside one span, and exits through exitAfterFlush. */
const PROBE = `
import { trace } from "@opentelemetry/api";
import { startTelemetry, exitAfterFlush } from ${JSON.stringify(dist("common/telemetry/telemetry.js"))};
import { createLogger } from ${JSON.stringify(dist("common/logger.js"))};
const logger = createLogger("probe");
await startTelemetry({ role: "runner", logger });
trace.getTracer("probe").startActiveSpan("probe.work", (span) => {
  logger.info("inside_span");
  span.end();
});
logger.info("outside_span");
await exitAfterFlush(0);
`;

async function runProbe(env: Record<string, string>) {
  const started = performance.now();
  const child = startProcess(["--input-type=module", "-e", PROBE], { ...process.env, MODELSWAP_LOG: "", ...env });
  const code = await new Promise<number | null>((resolve) => child.child.once("exit", resolve));
  return { code, ms: performance.now() - started, lines: child.stderr.map(jsonLine).filter((line) => line !== undefined), raw: child.stderr };
}

describe("telemetry SDK setup in one process", function () {
  this.timeout(30_000);
  let receiver: OtlpReceiver;
  before(async () => (receiver = await startOtlpReceiver()));
  after(async () => receiver?.stop());

  it("flushes batched spans on exit, and puts the active trace id on log lines", async () => {
    // a batch delay far longer than the process lives: only the flush on exit delivers the span
    const run = await runProbe({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "60000" });
    assert.equal(run.code, 0, run.raw.join("\n"));
    const span = receiver.spans.find((candidate) => candidate.name === "probe.work");
    assert.ok(span, "the span arrived before the process exited");
    assert.equal(span.service, "modelswap-runner");
    const inside = run.lines.find((line) => line.event === "inside_span")!;
    assert.equal(inside.traceId, span.traceId);
    assert.equal(inside.spanId, span.spanId);
    const outside = run.lines.find((line) => line.event === "outside_span")!;
    assert.equal(outside.traceId, undefined);
  });

  it("exports nothing and logs no errors when no OTLP endpoint is set", async () => {
    const before = receiver.spans.length;
    const run = await runProbe({ OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "" });
    assert.equal(run.code, 0);
    assert.equal(receiver.spans.length, before);
    assert.deepEqual(
      run.lines.filter((line) => line.level !== "info"),
      [],
      run.raw.join("\n"),
    );
    assert.equal(run.lines.find((line) => line.event === "telemetry_started")?.traces, "not exported");
    // trace ids still reach the logs (and the next process) without an exporter
    assert.match(String(run.lines.find((line) => line.event === "inside_span")?.traceId), /^[0-9a-f]{32}$/);
  });

  it("warns once, and still exits promptly, when the collector is unreachable", async () => {
    const closedPort = await freePortPair();
    const run = await runProbe({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closedPort}`, OTEL_BSP_SCHEDULE_DELAY: "60000" });
    assert.equal(run.code, 0);
    assert.ok(run.ms < 10_000, `took ${run.ms} ms`);
    const problems = run.lines.filter((line) => line.level !== "info");
    assert.equal(problems.length, 1, run.raw.join("\n"));
    assert.equal(problems[0]!.event, "telemetry_export_failed");
  });

  it("honours OTEL_TRACES_SAMPLER=always_off", async () => {
    const before = receiver.spans.length;
    const run = await runProbe({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_TRACES_SAMPLER: "always_off" });
    assert.equal(run.code, 0);
    assert.equal(receiver.spans.length, before);
  });
});

describe("readTelemetryEnv", () => {
  it("defaults: no export, gRPC, parent-based always-on sampling", () => {
    const env = readTelemetryEnv({});
    assert.equal(env.tracesEndpoint, undefined);
    assert.equal(env.protocol, "grpc");
    assert.equal(env.sampler, "parentbased_always_on");
    assert.equal(env.disabled, false);
    assert.equal(env.batch.scheduledDelayMillis, 1000);
  });

  it("reads the standard OTEL_* variables, the traces-specific endpoint first", () => {
    const env = readTelemetryEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4317",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_SDK_DISABLED: "true",
    });
    assert.equal(env.tracesEndpoint, "http://collector:4318/v1/traces");
    assert.equal(env.tracesEndpointIsSignalSpecific, true);
    assert.equal(env.protocol, "http/protobuf");
    assert.equal(env.sampler, "parentbased_traceidratio");
    assert.equal(env.samplerRatio, 0.25);
    assert.equal(env.batch.scheduledDelayMillis, 200);
    assert.equal(env.disabled, true);
  });

  it("ignores unknown or malformed values instead of failing the process", () => {
    const env = readTelemetryEnv({ OTEL_TRACES_SAMPLER: "bogus", OTEL_BSP_SCHEDULE_DELAY: "soon", OTEL_EXPORTER_OTLP_PROTOCOL: "carrier-pigeon", OTEL_TRACES_EXPORTER: "none" });
    assert.equal(env.sampler, "parentbased_always_on");
    assert.equal(env.batch.scheduledDelayMillis, 1000);
    assert.equal(env.protocol, "grpc");
    assert.equal(env.tracesExporterNone, true);
  });
});
