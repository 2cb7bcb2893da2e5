import { loadPackageDefinition, Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import path from "node:path";

/**
 * An OTLP/gRPC trace receiver inside the test process: a grpc-js server implementing
 * opentelemetry.proto.collector.trace.v1.TraceService/Export that decodes the real OTLP
 * protobuf (with the .proto files shipped in @opentelemetry/otlp-grpc-exporter-base@0.38.0)
 * and keeps every span. Point processes at it with OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint.
 */
export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  kind: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  events: { name: string; timeNs: bigint; attributes: Record<string, unknown> }[];
  status: { code: string; message: string };
}

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  spans: ReceivedSpan[];
  /** Export calls received (batches). */
  exports: number;
  /** Resolves with the first truthy value `probe(spans)` returns, re-checked after every export. */
  waitFor<T>(probe: (spans: ReceivedSpan[]) => T | undefined | false, timeoutMs?: number): Promise<T>;
  /** The spans of one trace as an indented tree with services and durations. */
  formatTrace(traceId: string): string;
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

function protosDir(): string {
  // @opentelemetry/otlp-grpc-exporter-base@0.38.0 (a devDependency) ships the OTLP protos in build/protos.
  let directory = path.dirname(require.resolve("@opentelemetry/otlp-grpc-exporter-base"));
  while (path.basename(directory) !== "build") directory = path.dirname(directory);
  return path.join(directory, "protos");
}

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
  arrayValue?: { values: AnyValue[] };
  kvlistValue?: { values: KeyValue[] };
  bytesValue?: Buffer;
  value?: string;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}

function decodeValue(value: AnyValue | undefined): unknown {
  if (!value || !value.value) return undefined;
  switch (value.value) {
    case "stringValue":
      return value.stringValue;
    case "boolValue":
      return value.boolValue;
    case "intValue":
      return Number(value.intValue);
    case "doubleValue":
      return value.doubleValue;
    case "arrayValue":
      return (value.arrayValue?.values ?? []).map(decodeValue);
    case "kvlistValue":
      return attributesOf(value.kvlistValue?.values ?? []);
    case "bytesValue":
      return value.bytesValue?.toString("hex");
    default:
      return undefined;
  }
}

function attributesOf(list: KeyValue[]): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const entry of list) result[entry.key] = decodeValue(entry.value);
  return result;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const definition = loadSync("opentelemetry/proto/collector/trace/v1/trace_service.proto", {
    includeDirs: [protosDir()],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const proto = loadPackageDefinition(definition) as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: { TraceService: { service: ServiceDefinition } } } } } };
  };
  const spans: ReceivedSpan[] = [];
  const probes = new Set<() => void>();
  let exports = 0;

  const server = new Server();
  server.addService(proto.opentelemetry.proto.collector.trace.v1.TraceService.service, {
    Export: (call: ServerUnaryCall<{ resourceSpans: unknown[] }, unknown>, callback: sendUnaryData<unknown>) => {
      exports++;
      for (const resourceSpans of call.request.resourceSpans as {
        resource?: { attributes: KeyValue[] };
        scopeSpans: { spans: Record<string, unknown>[] }[];
      }[]) {
        const service = String(attributesOf(resourceSpans.resource?.attributes ?? [])["service.name"] ?? "");
        for (const scope of resourceSpans.scopeSpans) {
          for (const span of scope.spans as {
            traceId: Buffer;
            spanId: Buffer;
            parentSpanId: Buffer;
            name: string;
            kind: string;
            startTimeUnixNano: string;
            endTimeUnixNano: string;
            attributes: KeyValue[];
            events: { name: string; timeUnixNano: string; attributes: KeyValue[] }[];
            status?: { code: string; message: string };
          }[]) {
            spans.push({
              service,
              traceId: span.traceId.toString("hex"),
              spanId: span.spanId.toString("hex"),
              parentSpanId: span.parentSpanId.toString("hex"),
              name: span.name,
              kind: span.kind,
              startNs: BigInt(span.startTimeUnixNano),
              endNs: BigInt(span.endTimeUnixNano),
              attributes: attributesOf(span.attributes),
              events: span.events.map((event) => ({ name: event.name, timeNs: BigInt(event.timeUnixNano), attributes: attributesOf(event.attributes) })),
              status: { code: span.status?.code ?? "STATUS_CODE_UNSET", message: span.status?.message ?? "" },
            });
          }
        }
      }
      callback(null, {});
      for (const probe of [...probes]) probe();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );

  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    get exports() {
      return exports;
    },
    waitFor<T>(probe: (spans: ReceivedSpan[]) => T | undefined | false, timeoutMs = 20_000): Promise<T> {
      const now = probe(spans);
      if (now) return Promise.resolve(now);
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          const value = probe(spans);
          if (!value) return;
          probes.delete(check);
          clearTimeout(timer);
          resolve(value);
        };
        const timer = setTimeout(() => {
          probes.delete(check);
          const names = spans.map((span) => `${span.service}:${span.name}`).join(", ");
          reject(new Error(`the OTLP receiver did not get the expected spans within ${timeoutMs} ms; got ${spans.length}: ${names}`));
        }, timeoutMs);
        probes.add(check);
      });
    },
    formatTrace(traceId: string): string {
      const inTrace = spans.filter((span) => span.traceId === traceId).sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
      const ids = new Set(inTrace.map((span) => span.spanId));
      const origin = inTrace[0]?.startNs ?? 0n;
      const lines: string[] = [`trace ${traceId}`];
      const ms = (ns: bigint) => (Number(ns) / 1e6).toFixed(1);
      const walk = (parent: string, depth: number) => {
        for (const span of inTrace.filter((candidate) => (parent === "" ? !ids.has(candidate.parentSpanId) : candidate.parentSpanId === parent))) {
          const keys = Object.entries(span.attributes)
            .filter(([key]) => key.startsWith("gen_ai.") || key.startsWith("modelswap.evict") || key.startsWith("modelswap.load.") || key === "modelswap.unload.reason")
            .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
            .join(" ");
          const events = span.events.map((event) => `${event.name}@+${ms(event.timeNs - span.startNs)}ms`).join(",");
          lines.push(
            `${"  ".repeat(depth)}${span.name} [${span.service}] +${ms(span.startNs - origin)}ms ${ms(span.endNs - span.startNs)}ms` +
              `${events ? ` events=${events}` : ""}${keys ? ` ${keys}` : ""}`,
          );
          walk(span.spanId, depth + 1);
        }
      };
      walk("", 1);
      return lines.join("\n");
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const probe of probes) probes.delete(probe);
        server.tryShutdown(() => resolve());
      }),
  };
}
