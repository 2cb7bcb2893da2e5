/**
 * Where the time of one swap goes: `modelswap serve` (as deployed, a child process) exports its
 * traces to an OTLP receiver in this process; requests go round-robin over bench:peer's files
 * (stories260K -> 100 MB F16 -> 600 MB F16 -> …) under a budget that holds one model, so every
 * request swaps. For each swap-in of the 100 MB and 600 MB models it prints the timeline of the
 * request's trace (generate > placement.acquire > queue.wait, model.evict > model.unload,
 * model.load (weights / context / warm-up as the runner measured them), runner.generate > first
 * token) and the gaps between the steps, medians over the rounds.
 *
 *   npx tsc -p . && node dist/bench/swap-breakdown.js [--rounds 3] [--tokens 64] [--dir DIR] [--time-limit 600] [--print-traces]
 *
 * A benchmark prints figures; it asserts nothing. serve and its runners are ended at the end,
 * on the time limit, an error or SIGINT.
 */
import { credentials, type ServiceError } from "@grpc/grpc-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { AdminClient } from "../gen/modelswap/v1/admin.js";
import { InferenceClient, type GenerateResponse } from "../gen/modelswap/v1/inference.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../test/support/otlp-receiver.js";
import { CLI_MAIN, startProcess, type WatchedProcess } from "../test/support/processes.js";
import { defaultPeerDir, modelswapSettled, oneModelBudget, peerConfigDocument, preparePeerFiles, warmPageCache } from "./lib/peer-models.js";
import { processTree, signalTree } from "./lib/process-tree.js";
import { fmt, loadAverage, median, positiveInt } from "./lib/report.js";
import { runBounded } from "./lib/run-bounded.js";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    dir: { type: "string", default: defaultPeerDir() },
    "time-limit": { type: "string", default: "600" },
    "print-traces": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write("node dist/bench/swap-breakdown.js [--rounds 3] [--tokens 64] [--dir DIR] [--time-limit 600] [--print-traces]\n");
  process.exit(0);
}
const ROUNDS = positiveInt(flags.rounds!, "--rounds");
const TOKENS = positiveInt(flags.tokens!, "--tokens");

let serve: WatchedProcess | undefined;
let receiver: OtlpReceiver | undefined;
let workDir: string | undefined;

async function stopEverything(): Promise<void> {
  if (serve) {
    const tree = serve.child.pid === undefined ? [] : processTree(serve.child.pid);
    await serve.stop();
    signalTree(tree, "SIGKILL"); // runners that outlived serve
    serve = undefined;
  }
  await receiver?.stop();
  receiver = undefined;
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

function generate(client: InferenceClient, model: string): Promise<{ ttftMs: number; sentAtMs: number }> {
  return new Promise((resolve, reject) => {
    const sentAtMs = Date.now();
    const started = performance.now();
    let ttftMs = Number.NaN;
    const call = client.generate(
      { model, prompt: "Once upon a time", maxTokens: TOKENS, task: "", resumable: false, sampling: { temperature: 0, repeatPenalty: 1, ignoreEos: true, stop: [] } },
      { deadline: new Date(Date.now() + 120_000) },
    );
    call.on("data", (message: GenerateResponse) => {
      if (message.event?.$case === "token" && Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
    });
    call.on("error", (error: ServiceError) => reject(new Error(`Generate ${model}: ${error.code} ${error.details}`)));
    call.on("end", () => resolve({ ttftMs, sentAtMs }));
  });
}

const ms = (ns: bigint) => Number(ns) / 1e6;
const only = (spans: ReceivedSpan[], name: string) => spans.find((span) => span.name === name);
const eventAt = (span: ReceivedSpan | undefined, name: string) => span?.events.find((event) => event.name === name)?.timeNs;

/** One swap-in, as steps and gaps in ms (NaN where the trace lacks the span). */
function breakdown(trace: ReceivedSpan[], clientTtftMs: number): Map<string, number> {
  const generateSpan = only(trace, "generate")!;
  const acquire = only(trace, "placement.acquire");
  const queueWait = only(trace, "queue.wait");
  // a load may evict several models: the evictions as one step, first start to last end
  const evicts = trace.filter((span) => span.name === "model.evict");
  const unloads = trace.filter((span) => span.name === "model.unload");
  const range = (spans: ReceivedSpan[]) =>
    spans.length === 0
      ? undefined
      : { startNs: spans.reduce((min, span) => (span.startNs < min ? span.startNs : min), spans[0]!.startNs), endNs: spans.reduce((max, span) => (span.endNs > max ? span.endNs : max), spans[0]!.endNs) };
  const evict = range(evicts);
  const unload = range(unloads);
  const load = only(trace, "model.load");
  const runner = only(trace, "runner.generate");
  const origin = generateSpan.startNs;
  const at = (ns: bigint | undefined) => (ns === undefined ? Number.NaN : ms(ns - origin));
  const attr = (span: ReceivedSpan | undefined, key: string) => Number(span?.attributes[key] ?? Number.NaN);
  const modelMs = attr(load, "modelswap.load.model_ms");
  const contextMs = attr(load, "modelswap.load.context_ms");
  const warmUpMs = attr(load, "modelswap.load.warm_up_ms");
  const runnerLoadMs = attr(load, "modelswap.load.duration_ms");
  const steps = new Map<string, number>([
    ["gateway: request in -> placement.acquire", at(acquire?.startNs)],
    ["queue.wait (whole)", queueWait ? ms(queueWait.endNs - queueWait.startNs) : Number.NaN],
    ["acquire start -> model.evict start", at(evict?.startNs) - at(acquire?.startNs)],
    ["models evicted", evicts.length],
    ["model.evict (first start -> last end)", evict ? ms(evict.endNs - evict.startNs) : Number.NaN],
    ["model.unload (first start -> last end)", unload ? ms(unload.endNs - unload.startNs) : Number.NaN],
    ["unload end -> model.load start", at(load?.startNs) - at(unload?.endNs ?? evict?.endNs)],
    ["model.load (placement's span)", load ? ms(load.endNs - load.startNs) : Number.NaN],
    ["  runner: weights (loadModel)", modelMs],
    ["  runner: context (createContext)", contextMs],
    ["  runner: warm-up", warmUpMs],
    ["  runner: load total", runnerLoadMs],
    ["  span - runner total (commands, reports)", load ? ms(load.endNs - load.startNs) - runnerLoadMs : Number.NaN],
    ["model.load end -> lease (acquire end)", at(acquire?.endNs) - at(load?.endNs)],
    ["lease -> runner.generate start", at(runner?.startNs) - at(acquire?.endNs)],
    ["runner.generate start -> first token", at(eventAt(runner, "first_token")) - at(runner?.startNs)],
    ["runner first token -> gateway first token (*)", at(eventAt(generateSpan, "first_token")) - at(eventAt(runner, "first_token"))],
    ["gateway: TTFT (trace)", at(eventAt(generateSpan, "first_token"))],
    ["client: TTFT", clientTtftMs],
  ]);
  return steps;
}

async function main(): Promise<void> {
  console.log(`swap-breakdown: load average ${loadAverage()}`);
  const files = await preparePeerFiles(path.resolve(flags.dir!));
  await warmPageCache(files.swap);
  console.log("calibrating the one-model budget…");
  const calibration = await oneModelBudget(files.swap);
  console.log(`  budget ${fmt(calibration.budgetBytes / 1e6, 0)} MB (runner ${fmt(calibration.runnerBytes / 1e6, 0)} MB; footprints ${[...calibration.footprints].map(([name, bytes]) => `${name} ${fmt(bytes / 1e6, 0)} MB`).join(", ")})`);

  receiver = await startOtlpReceiver();
  workDir = mkdtempSync(path.join(tmpdir(), "modelswap-swap-breakdown-"));
  const configPath = path.join(workDir, "modelswap.yaml");
  writeFileSync(configPath, stringify(peerConfigDocument(files.swap, calibration.budgetBytes)));
  serve = startProcess([CLI_MAIN, "serve", "-c", configPath], {
    ...process.env,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
    OTEL_BSP_SCHEDULE_DELAY: "25",
    MODELSWAP_LOG: "",
  });
  const gatewayAddress = await serve.waitForLine((line) => /^modelswap serving on (\S+)/.exec(line)?.[1]);
  const client = new InferenceClient(gatewayAddress, credentials.createInsecure());
  const admin = new AdminClient(gatewayAddress, credentials.createInsecure());
  try {
    const measured = new Map<string, Map<string, number>[]>();
    // one warm-up round, then ROUNDS measured ones; every request swaps
    for (let round = 0; round <= ROUNDS; round++) {
      for (const model of files.swap) {
        await modelswapSettled(admin); // each request starts on an idle system, as in bench:peer
        const { ttftMs, sentAtMs } = await generate(client, model.name);
        if (round === 0 || model.name === "stories260K") continue;
        const trace = await receiver.waitFor((spans) => {
          const root = spans.find((span) => span.name === "generate" && span.attributes["gen_ai.request.model"] === model.name && ms(span.startNs) >= sentAtMs - 5);
          if (!root) return undefined;
          const inTrace = spans.filter((span) => span.traceId === root.traceId);
          return ["placement.acquire", "model.load", "runner.generate"].every((name) => inTrace.some((span) => span.name === name)) ? inTrace : undefined;
        }, 20_000);
        if (flags["print-traces"]) console.log(receiver.formatTrace(trace[0]!.traceId));
        measured.set(model.name, [...(measured.get(model.name) ?? []), breakdown(trace, ttftMs)]);
      }
    }
    console.log(`\none swap-in (the model before it is evicted), page cache warm, ${TOKENS} tokens, threads 1, ctx 2048; ms, median (min–max) of ${ROUNDS}:\n`);
    const names = [...measured.keys()];
    console.log(`| step | ${names.join(" | ")} |`);
    console.log(`|---|${names.map(() => "---|").join("")}`);
    for (const step of measured.get(names[0]!)![0]!.keys()) {
      const cells = names.map((name) => {
        const values = measured.get(name)!.map((entry) => entry.get(step)!).filter((value) => Number.isFinite(value));
        if (step === "models evicted") return values.join(", ");
        return values.length === 0 ? "—" : `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`;
      });
      console.log(`| ${step} | ${cells.join(" | ")} |`);
    }
    console.log("\n(*) the runner stamps first_token when the engine has the first token; the gateway when its first text arrives.");
  } finally {
    client.close();
    admin.close();
    await stopEverything();
  }
}

runBounded(main, { timeLimitS: positiveInt(flags["time-limit"]!, "--time-limit"), cleanup: stopEverything });
