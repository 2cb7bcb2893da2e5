import { credentials, makeClientConstructor, type Client, type ClientReadableStream, type ServiceDefinition } from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { forgeModel } from "../../forge/forge-model.js";
import { InferenceClient } from "../../gen/modelswap/v1/inference.js";
import { collect, generateRequest } from "../support/cluster.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../support/otlp-receiver.js";
import { projectRoot, storiesModel } from "../support/paths.js";
import { RUNNER_KEY_ENV } from "../../common/internal-auth/internal-env.js";
import { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import { CLI_MAIN, RUNNER_MAIN, freePortPair, jsonLine, startProcess, type WatchedProcess } from "../support/processes.js";

const MiB = 1024 * 1024;
/** Two forged models of this size (a file and its copy, tokenizer from stories260K), context 256. */
const MODEL_FILE_BYTES = 48 * MiB;
/**
 * Placement charges such a model ~79 MB before its first load (GGUF estimate) and ~57 MB
 * once measured. One runner holds one model: with a budget of one idle runner plus ~111 MB,
 * "big" fits alone (79 MB) but "big2" (79 MB more) fits only once "big" (57 MB) is evicted:
 * the budget sits mid-way in that ~57 MB window, so a runner's own RSS may differ from the
 * probe's by +-25 MB.
 */
const ROOM_FOR_ONE_MODEL = 106 * MiB;
const BUF = path.join(projectRoot, "node_modules", ".bin", "buf");

interface HealthClient extends Client {
  Watch(request: { service: string }): ClientReadableStream<{ status: string }>;
}
const HealthClient = makeClientConstructor(healthServiceDefinition as unknown as ServiceDefinition, "grpc.health.v1.Health") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => HealthClient;

/** Every status a Health/Watch stream delivers, in order. */
function recordHealth(address: string): { statuses: string[]; serving: Promise<void>; stop(): void } {
  const client = new HealthClient(address, credentials.createInsecure());
  const call = client.Watch({ service: "" });
  const statuses: string[] = [];
  let resolveServing!: () => void;
  const serving = new Promise<void>((resolve) => (resolveServing = resolve));
  call.on("data", (message: { status: string }) => {
    statuses.push(message.status);
    if (message.status === "SERVING") resolveServing();
  });
  call.on("error", () => undefined);
  return {
    statuses,
    serving,
    stop: () => {
      call.cancel();
      client.close();
    },
  };
}

/** The RSS of an idle runner process (what placement charges per runner), measured on a real one. */
async function idleRunnerRss(env: NodeJS.ProcessEnv): Promise<number> {
  const probe = startProcess([RUNNER_MAIN, "--id", "rss-probe", "--placement", "127.0.0.1:9", "--gpu", "cpu"], { ...env, [RUNNER_KEY_ENV]: InternalSecret.random().runnerKey("rss-probe").toText() });
  try {
    return await probe.waitForLine((line) => {
      const entry = jsonLine(line);
      return entry?.event === "runner_listening" ? Number(entry.rssBytes) : undefined;
    });
  } finally {
    await probe.stop();
  }
}

function spanNamed(spans: ReceivedSpan[], name: string, where: (span: ReceivedSpan) => boolean = () => true): ReceivedSpan {
  const span = spans.find((candidate) => candidate.name === name && where(candidate));
  assert.ok(span, `no ${name} span; have: ${spans.map((s) => s.name).join(", ")}`);
  return span;
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  assert.equal(response.status, 200, url);
  return response.text();
}

/** The value of one Prometheus sample, e.g. sample(text, 'modelswap_swaps_total{model="big",reason="evicted"}'). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[3] ?? "").matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[4]);
  }
  return undefined;
}

describe("telemetry: one trace per request across gateway, placement and runner processes", function () {
  this.timeout(60_000);
  let receiver: OtlpReceiver;
  let directory: string;
  let serve: WatchedProcess | undefined;
  let gatewayAddress: string;
  let placementAddress: string;
  let metricsPort: number;
  let budgetBytes: number;
  let big2Path: string;
  let gatewayHealth: ReturnType<typeof recordHealth>;
  let placementHealth: ReturnType<typeof recordHealth>;
  let inference: InferenceClient;

  before(async () => {
    // The receiver first: every process exports to it from its first span on.
    receiver = await startOtlpReceiver();
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-telemetry-"));
    const bigPath = path.join(directory, "big.gguf");
    big2Path = path.join(directory, "big2.gguf");
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_BSP_SCHEDULE_DELAY: "25",
      MODELSWAP_LOG: "",
    };
    const [, runnerRss, port] = await Promise.all([
      forgeModel({ sizeBytes: MODEL_FILE_BYTES, outPath: bigPath, weightType: "q8_0", seed: 11, tokenizerFrom: storiesModel }),
      idleRunnerRss(env),
      freePortPair(),
    ]);
    metricsPort = port;
    copyFileSync(bigPath, big2Path);
    // Room for one runner and one model: asking for big2 while big is resident must evict big (the swap).
    budgetBytes = Math.round(runnerRss + ROOM_FOR_ONE_MODEL);
    const configPath = path.join(directory, "modelswap.yaml");
    writeFileSync(
      configPath,
      [
        "listen: 127.0.0.1:0",
        `budget: ${budgetBytes}`,
        "placement:",
        "  listen: 127.0.0.1:0",
        "  eviction: lru",
        "  spare_runners: 1",
        "  prefetch: true",
        "telemetry:",
        `  metrics_port: ${metricsPort}`,
        "defaults:",
        "  threads: 1",
        "  context: 256",
        "  sequences: 2",
        "  gpu: cpu",
        "models:",
        "  - name: big",
        `    path: ${bigPath}`,
        "    preload: true",
        "  - name: big2",
        `    path: ${big2Path}`,
        "",
      ].join("\n"),
    );
    serve = startProcess([CLI_MAIN, "serve", "-c", configPath], env);
    [gatewayAddress, placementAddress] = await serve.waitForLine((line) => {
      const match = /^modelswap serving on (\S+) \(placement (\S+)\)/.exec(line);
      return match ? [match[1]!, match[2]!] : undefined;
    });
    // Watch health at once: placement is still loading its preload (a runner process has to start).
    gatewayHealth = recordHealth(gatewayAddress);
    placementHealth = recordHealth(placementAddress);
    inference = new InferenceClient(gatewayAddress, credentials.createInsecure());
  });

  after(async () => {
    gatewayHealth?.stop();
    placementHealth?.stop();
    inference?.close();
    await serve?.stop();
    await receiver?.stop();
    if (directory) rmSync(directory, { recursive: true, force: true });
  });

  it("reports NOT_SERVING on grpc.health.v1 while starting, then SERVING once the preload is resident", async () => {
    await Promise.all([gatewayHealth.serving, placementHealth.serving]);
    assert.equal(gatewayHealth.statuses[0], "NOT_SERVING", `gateway: ${gatewayHealth.statuses.join(" -> ")}`);
    assert.equal(placementHealth.statuses[0], "NOT_SERVING", `placement: ${placementHealth.statuses.join(" -> ")}`);
    assert.equal(gatewayHealth.statuses.at(-1), "SERVING");
    assert.equal(placementHealth.statuses.at(-1), "SERVING");
  });

  it("puts the swap a request caused inside that request's trace: generate > placement.acquire > model.evict > model.load, and runner.generate", async () => {
    await gatewayHealth.serving;
    // act: big2 is cold and big fills the budget
    const result = await collect(inference, generateRequest({ model: "big2", maxTokens: 12, sampling: { temperature: 0, ignoreEos: true, stop: [] } }), {
      deadline: new Date(Date.now() + 20_000),
    });
    assert.equal(result.error, undefined, `${result.error?.details}\nserve's last log lines:\n${serve!.stderr.slice(-30).join("\n")}`);
    assert.ok(result.done!.timings!.loadMs > 0, "big2 was loaded for this request");

    // assert: one trace holds the whole story, from three processes
    const trace = await receiver.waitFor((spans) => {
      const root = spans.find((span) => span.name === "generate" && span.attributes["gen_ai.request.model"] === "big2");
      if (!root) return undefined;
      const inTrace = spans.filter((span) => span.traceId === root.traceId);
      const names = new Set(inTrace.map((span) => span.name));
      const complete = ["placement.acquire", "queue.wait", "model.evict", "model.unload", "model.load", "runner.generate"].every((name) => names.has(name));
      return complete ? inTrace : undefined;
    });
    if (process.env.MODELSWAP_PRINT_TRACE) process.stdout.write(receiver.formatTrace(trace[0]!.traceId) + "\n");

    const generate = spanNamed(trace, "generate");
    const acquire = spanNamed(trace, "placement.acquire");
    const queueWait = spanNamed(trace, "queue.wait");
    const evict = spanNamed(trace, "model.evict");
    const unload = spanNamed(trace, "model.unload");
    const load = spanNamed(trace, "model.load");
    const runner = spanNamed(trace, "runner.generate");

    // processes
    assert.equal(generate.service, "modelswap-gateway");
    for (const span of [acquire, queueWait, evict, unload, load]) assert.equal(span.service, "modelswap-placement", span.name);
    assert.equal(runner.service, "modelswap-runner");

    // parentage
    assert.equal(generate.parentSpanId, "", "generate is the root");
    assert.equal(acquire.parentSpanId, generate.spanId);
    assert.equal(queueWait.parentSpanId, acquire.spanId);
    assert.equal(evict.parentSpanId, acquire.spanId, "the eviction is parented under the waiting request");
    assert.equal(unload.parentSpanId, evict.spanId);
    assert.equal(load.parentSpanId, acquire.spanId, "the load is parented under the waiting request");
    assert.equal(runner.parentSpanId, generate.spanId);

    // order: evict -> load -> generate on the runner. The SDK anchors each span on Date.now()
    // (whole milliseconds), so two spans' times can be off by up to a millisecond or so.
    const before = (a: bigint, b: bigint) => a <= b + 2_000_000n;
    assert.ok(before(evict.startNs, load.startNs) && before(unload.endNs, load.startNs), "unload finished before the load started");
    assert.ok(before(load.endNs, acquire.endNs) && before(acquire.endNs, runner.startNs), "lease granted after the load, runner called after the lease");
    assert.ok(before(runner.endNs, generate.endNs) && before(generate.startNs, acquire.startNs));

    // the swap's attributes
    assert.equal(evict.attributes["modelswap.evict.model"], "big");
    assert.match(String(evict.attributes["modelswap.evict.reason"]), /^evicted by lru for big2$/);
    assert.ok(Number(evict.attributes["modelswap.evict.bytes_freed"]) >= MODEL_FILE_BYTES, JSON.stringify(evict.attributes));
    assert.equal(unload.attributes["modelswap.model"], "big");
    assert.equal(load.attributes["modelswap.model"], "big2");
    assert.equal(load.attributes["modelswap.load.file_bytes"], statSync(big2Path).size);
    assert.ok(["page_cache", "unknown"].includes(String(load.attributes["modelswap.load.source"])), String(load.attributes["modelswap.load.source"]));
    assert.ok(Number(load.attributes["modelswap.load.duration_ms"]) > 0);
    assert.ok(Number(load.attributes["modelswap.load.bytes_per_second"]) > 0);
    assert.ok(Number(load.attributes["modelswap.load.measured_bytes"]) >= 0);

    // GenAI semantic conventions, and the first token
    const usage = result.done!.usage!;
    for (const span of [generate, runner]) {
      assert.equal(span.attributes["gen_ai.operation.name"], "text_completion", span.name);
      assert.equal(span.attributes["gen_ai.request.model"], "big2", span.name);
      assert.equal(span.attributes["gen_ai.usage.input_tokens"], usage.promptTokens, span.name);
      assert.equal(span.attributes["gen_ai.usage.output_tokens"], usage.completionTokens, span.name);
    }
    assert.ok(usage.promptTokens > 0 && usage.completionTokens > 0);
    assert.ok(runner.events.some((event) => event.name === "first_token"), "runner.generate has a first_token event");
    assert.ok(generate.events.some((event) => event.name === "first_token"));
    assert.equal(acquire.attributes["gen_ai.request.model"], "big2");
  });

  it("serves Prometheus /metrics: the swap counted, resident bytes within the budget, TTFT and tokens", async () => {
    const placementMetrics = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    const gatewayMetrics = await scrape(`http://127.0.0.1:${metricsPort + 1}/metrics`);
    if (process.env.MODELSWAP_PRINT_TRACE) process.stdout.write(placementMetrics.split("\n").filter((line) => line.startsWith("modelswap_")).join("\n") + "\n");

    assert.equal(sample(placementMetrics, "modelswap_swaps_total", { model: "big", reason: "evicted" }), 1);
    const resident = sample(placementMetrics, "modelswap_resident_bytes");
    const budget = sample(placementMetrics, "modelswap_budget_bytes");
    assert.equal(budget, budgetBytes);
    assert.ok(resident !== undefined && resident > 0 && resident <= budget!, `resident ${resident} budget ${budget}; serve's last log lines:\n${serve!.stderr.slice(-20).join("\n")}`);
    assert.equal(sample(placementMetrics, "modelswap_model_resident", { model: "big2" }), 1);
    assert.equal(sample(placementMetrics, "modelswap_model_resident", { model: "big" }), 0);
    assert.equal(sample(placementMetrics, "modelswap_queue_depth", { model: "big2" }), 0);
    assert.ok((sample(placementMetrics, "modelswap_model_load_seconds_count", { model: "big2" }) ?? 0) >= 1);
    assert.ok((sample(placementMetrics, "modelswap_model_load_seconds_count", { model: "big" }) ?? 0) >= 1);
    assert.ok((sample(placementMetrics, "modelswap_runner_rss_bytes", { model: "big2" }) ?? 0) > 0);

    assert.ok((sample(gatewayMetrics, "modelswap_ttft_seconds_count", { model: "big2" }) ?? 0) >= 1);
    assert.ok((sample(gatewayMetrics, "modelswap_generated_tokens_total", { model: "big2" }) ?? 0) >= 12);
    assert.ok((sample(gatewayMetrics, "modelswap_requests_total", { model: "big2", operation: "text_completion", code: "0" }) ?? 0) >= 1);
  });


  it("serves a warm request on the lease the previous one held (no placement.acquire in its trace), and a swap waits for that lease to come back", async () => {
    const sampling = { temperature: 0, ignoreEos: true, stop: [] };
    const sentAtNs = BigInt(Date.now() - 1) * 1_000_000n;
    // act: big2 is warm and the gateway holds the lease of the last request for it
    const warm = await collect(inference, generateRequest({ model: "big2", maxTokens: 4, sampling }), { deadline: new Date(Date.now() + 20_000) });
    assert.equal(warm.error, undefined, warm.error?.details);
    const warmTrace = await receiver.waitFor((spans) => {
      const root = spans.find((span) => span.name === "generate" && span.attributes["gen_ai.request.model"] === "big2" && span.startNs >= sentAtNs);
      const inTrace = root ? spans.filter((span) => span.traceId === root.traceId) : [];
      return inTrace.some((span) => span.name === "runner.generate") ? inTrace : undefined;
    });
    assert.deepEqual(warmTrace.map((span) => span.name).filter((name) => name.startsWith("placement.")), [], "no placement round trip");
    assert.equal(warm.done!.timings!.queueMs, 0);

    // act: big is cold and needs big2's memory, whose lease the gateway holds: placement asks for it back first
    const swap = await collect(inference, generateRequest({ model: "big", maxTokens: 4, sampling }), { deadline: new Date(Date.now() + 20_000) });
    assert.equal(swap.error, undefined, `${swap.error?.details}\nserve's last log lines:\n${serve!.stderr.slice(-30).join("\n")}`);
    assert.ok(swap.done!.timings!.loadMs > 0, "big was loaded for this request");
    // big2 leaves for big once its lease is back: evicted, or, where its runner kept memory from the
    // earlier unload of big (heap not returned; how much depends on the machine), by recycling that runner.
    const [unload, evict] = await receiver.waitFor((spans) => {
      const unloadSpan = spans.find((span) => span.name === "model.unload" && span.attributes["modelswap.model"] === "big2" && span.startNs >= sentAtNs);
      if (!unloadSpan) return undefined;
      const evictSpan = spans.find((span) => span.name === "model.evict" && span.spanId === unloadSpan.parentSpanId);
      return String(unloadSpan.attributes["modelswap.unload.reason"]).startsWith("evicted") && !evictSpan ? undefined : ([unloadSpan, evictSpan] as const);
    });
    const reason = String(unload.attributes["modelswap.unload.reason"]);
    assert.match(reason, /^(evicted by lru for big|runner recycled to return memory it kept, for big)$/);
    if (evict) assert.equal(evict.attributes["modelswap.evict.model"], "big2");
  });
  it("answers buf curl through server reflection: lists the services and streams a Generate without local protos", async () => {
    const run = promisify(execFile);
    const common = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];
    const listed = await run(BUF, [...common, `http://${gatewayAddress}`, "--list-services"], { cwd: directory });
    assert.deepEqual(listed.stdout.trim().split("\n").sort(), ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "modelswap.v1.Admin", "modelswap.v1.Inference"]);
    const placementListed = await run(BUF, [...common, `http://${placementAddress}`, "--list-services"], { cwd: directory });
    assert.ok(placementListed.stdout.includes("modelswap.v1.Placement") && placementListed.stdout.includes("grpc.health.v1.Health"), placementListed.stdout);

    const streamed = await run(
      BUF,
      [
        ...common,
        "-d",
        '{"model":"big2","prompt":"Once upon a time","max_tokens":20,"sampling":{"seed":3,"ignore_eos":true}}',
        `http://${gatewayAddress}/modelswap.v1.Inference/Generate`,
      ],
      { cwd: directory },
    );
    const messages = streamed.stdout.split(/\n(?=\{)/).map((chunk) => JSON.parse(chunk) as Record<string, { completionTokens?: number } & Record<string, unknown>>);
    assert.ok(messages.filter((message) => "token" in message).length > 0, streamed.stdout);
    const done = messages.find((message) => "done" in message)?.done as { usage: { completionTokens: number }; model: string } | undefined;
    assert.ok(done, streamed.stdout);
    assert.equal(done.model, "big2");
    assert.equal(done.usage.completionTokens, 20);
  });
});
