/**
 * Decode throughput and TTFT through the gateway vs in-process node-llama-cpp.
 *
 *   npx tsc -p . && node dist/bench/decode-throughput.js [--tokens 400] [--ttft-requests 30] [--rounds 3]
 *       [--concurrency 1,2,4] [--conc-tokens 200] [--model FILE] [--prompt TEXT] [--no-replicas]
 *       [--time-limit 300] [--verbose]
 *
 * Boots placement + gateway in this process (runners are child processes, as in production) on
 * one model, context 512, threads 1, and measures:
 *   (a) tokens/s of one stream (greedy, ignore_eos) — gateway vs in-process; goal ratio >= 0.97
 *   (b) TTFT p50/p90 of short requests (max_tokens 1..4) — goal: gateway adds <= 1 ms at p50. The
 *       in-process baseline evaluates each prompt whole; runners reuse a cached prefix (the
 *       prompt cache), so a warm request through the gateway evaluates less than the baseline.
 *   (c) aggregate tokens/s with 1, 2, 4 concurrent streams on one runner (sequences 4) and on two
 *       replicas (replicas {min: 2, max: 2}) vs in-process sequences on one context.
 * Baseline and gateway runs alternate, each measured `rounds` times; medians are printed. Besides
 * wall-clock rates it prints CPU milliseconds per token (this process, and the runner processes
 * from /proc), which other load on the box disturbs much less than wall time.
 * A benchmark prints figures; it asserts nothing.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import { parseConfig } from "../common/config/parse-config.js";
import { AdminClient, type StatusResponse } from "../gen/modelswap/v1/admin.js";
import { InferenceClient, type GenerateResponse } from "../gen/modelswap/v1/inference.js";
import { percentile, median, fmt, table, loadAverage, positiveInt } from "./lib/report.js";
import { runBounded } from "./lib/run-bounded.js";
import { startLocalStack, stopAllStacks, type LocalStack } from "./lib/local-stack.js";
import { callUnary } from "../common/grpc/call-unary.js";

const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MODEL_NAME = "tiny";
const CONTEXT = 512;
const CLOCK_TICKS_PER_S = 100; // Linux USER_HZ for /proc/<pid>/stat

const HELP =
  "node dist/bench/decode-throughput.js [--tokens 400] [--ttft-requests 30] [--rounds 3] [--concurrency 1,2,4]\n" +
  "  [--conc-tokens 200] [--model FILE] [--prompt TEXT] [--no-replicas] [--time-limit SECONDS] [--verbose]\n";
const { values: flags } = parseArgs({
  options: {
    tokens: { type: "string", default: "400" },
    "ttft-requests": { type: "string", default: "30" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,2,4" },
    "conc-tokens": { type: "string", default: "200" },
    model: { type: "string", default: "models/stories260K.gguf" },
    prompt: { type: "string", default: "Once upon a time" },
    "no-replicas": { type: "boolean", default: false },
    "time-limit": { type: "string", default: "300" },
    verbose: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const TOKENS = positiveInt(flags.tokens!, "--tokens");
const TTFT_REQUESTS = positiveInt(flags["ttft-requests"]!, "--ttft-requests");
const ROUNDS = positiveInt(flags.rounds!, "--rounds");
const CONCURRENCY = flags.concurrency!.split(",").map((part) => positiveInt(part.trim(), "--concurrency"));
const CONC_TOKENS = positiveInt(flags["conc-tokens"]!, "--conc-tokens");
const MODEL_PATH = path.resolve(PROJECT_ROOT, flags.model!);
const PROMPT = flags.prompt!;
const TIME_LIMIT_S = positiveInt(flags["time-limit"]!, "--time-limit");
const SEQUENCES = Math.max(4, ...CONCURRENCY);


// ---- statistics and printing ---------------------------------------------------------







// ---- CPU accounting ----------------------------------------------------------------------

/** CPU milliseconds (user + system) of a process, all threads; NaN when unreadable. */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S) * 1000;
  } catch {
    return Number.NaN;
  }
}
const selfCpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

interface Measured<T> {
  value: T;
  wallMs: number;
  /** This process: in-process model, or gateway + router + client. */
  selfCpuMs: number;
  /** The runner processes. */
  runnerCpuMs: number;
}

async function measure<T>(runnerPids: number[], run: () => Promise<T>): Promise<Measured<T>> {
  const runnersBefore = runnerPids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
  const selfBefore = selfCpuMs();
  const started = performance.now();
  const value = await run();
  const wallMs = performance.now() - started;
  return {
    value,
    wallMs,
    selfCpuMs: selfCpuMs() - selfBefore,
    runnerCpuMs: runnerPids.reduce((sum, pid) => sum + processCpuMs(pid), 0) - runnersBefore,
  };
}

// ---- one stream, either path ------------------------------------------------------------

interface StreamResult {
  /** Call start to first token. */
  ttftMs: number;
  /** First to last token. */
  decodeMs: number;
  tokens: number;
  text: string;
  endMs: number;
}

function decodeRate(result: StreamResult): number {
  return result.tokens > 1 && result.decodeMs > 0 ? (result.tokens - 1) / (result.decodeMs / 1000) : Number.NaN;
}

/**
 * In-process node-llama-cpp: tokenize with BOS, greedy, keep going past end-of-generation
 * (EOG is replaced by "\n", as the runner does), detokenize each token with a little left
 * context so the text is what a streaming consumer would print.
 */
class Baseline {
  private constructor(
    private readonly model: LlamaModel,
    private readonly single: LlamaContext,
    private readonly multi: LlamaContext,
  ) {}

  static async create(modelPath: string): Promise<Baseline> {
    const llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    const single = await model.createContext({ contextSize: CONTEXT, threads: 1 });
    const multi = await model.createContext({ contextSize: CONTEXT, sequences: SEQUENCES, threads: 1 });
    return new Baseline(model, single, multi);
  }

  /** Defaults to the runner's own settings (one context, SEQUENCES sequences): the same model and settings on both paths. */
  async generate(maxTokens: number, context: "single" | "multi" = "multi"): Promise<StreamResult> {
    const startMs = performance.now();
    const tokens = this.model.tokenize(PROMPT);
    const bos = this.model.tokens.bos;
    if (bos !== null && this.model.tokens.shouldPrependBosToken) tokens.unshift(bos);
    const sequence = (context === "single" ? this.single : this.multi).getSequence();
    const newline = this.model.tokenize("\n")[0]!;
    const generated: Token[] = [];
    let firstMs = 0;
    let lastMs = 0;
    let text = "";
    try {
      const iterator = sequence.evaluate(tokens, { temperature: 0, yieldEogToken: true })[Symbol.asyncIterator]();
      let replacement: Token | undefined;
      try {
        while (generated.length < maxTokens) {
          const step = await iterator.next(replacement as Token);
          replacement = undefined;
          if (step.done) break;
          let token = step.value;
          if (this.model.isEogToken(token)) {
            token = newline;
            replacement = token;
          }
          const now = performance.now();
          if (generated.length === 0) firstMs = now;
          lastMs = now;
          text += this.model.detokenize([token], false, generated.slice(-4));
          generated.push(token);
        }
      } finally {
        await iterator.return?.();
      }
    } finally {
      sequence.dispose();
    }
    return { ttftMs: firstMs - startMs, decodeMs: lastMs - firstMs, tokens: generated.length, text, endMs: performance.now() };
  }
}

function gatewayGenerate(client: InferenceClient, maxTokens: number, timeoutMs = 120_000): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const startMs = performance.now();
    let firstMs = 0;
    let lastMs = 0;
    let text = "";
    let tokens = 0;
    let done = false;
    const call = client.generate(
      {
        model: MODEL_NAME,
        prompt: PROMPT,
        maxTokens,
        task: "",
        resumable: false,
        sampling: { temperature: 0, repeatPenalty: 1, ignoreEos: true, stop: [] },
      },
      { deadline: new Date(Date.now() + timeoutMs) },
    );
    call.on("data", (message: GenerateResponse) => {
      const event = message.event;
      if (event?.$case === "token") {
        const now = performance.now();
        if (firstMs === 0) firstMs = now;
        lastMs = now;
        text += event.value.text;
      } else if (event?.$case === "done") {
        done = true;
        tokens = event.value.usage?.completionTokens ?? 0;
      }
    });
    call.on("error", (error: ServiceError) => reject(new Error(`Generate failed: ${error.code} ${error.details}`)));
    call.on("end", () => {
      if (!done) return reject(new Error("stream ended without done"));
      resolve({ ttftMs: firstMs - startMs, decodeMs: lastMs - firstMs, tokens, text, endMs: performance.now() });
    });
  });
}

/** `streams` concurrent streams; aggregate tokens/s over the wall time from start to the last done. */
async function concurrent(streams: number, run: () => Promise<StreamResult>): Promise<{ tokens: number; tokPerS: number }> {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: streams }, () => run()));
  const ended = Math.max(...results.map((result) => result.endMs));
  const tokens = results.reduce((sum, result) => sum + result.tokens, 0);
  return { tokens, tokPerS: tokens / ((ended - started) / 1000) };
}

// ---- the product stack ------------------------------------------------------------------

type Stack = LocalStack;

/** Baseline first on even rounds, gateway first on odd ones: neither always runs on a warmer box. */
async function alternately(round: number, baselineRun: () => Promise<unknown>, gatewayRun: () => Promise<unknown>): Promise<void> {
  const [first, second] = round % 2 === 0 ? [baselineRun, gatewayRun] : [gatewayRun, baselineRun];
  await first();
  await second();
}

async function bootStack(replicas: number): Promise<Stack> {
  const config = parseConfig(
    {
      listen: "127.0.0.1:0",
      budget: "4GiB",
      // One warm spare, as deployed; it idles during the measurements.
      placement: { listen: "127.0.0.1:0", eviction: "lru", spare_runners: 1 },
      defaults: { context: CONTEXT, threads: 1, gpu: "cpu" },
      models: [
        {
          name: MODEL_NAME,
          path: MODEL_PATH,
          sequences: SEQUENCES,
          preload: true,
          replicas: { min: replicas, max: replicas },
          sampling: { temperature: 0, repeat_penalty: 1 },
        },
      ],
    },
    PROJECT_ROOT,
  );
  const stack = await startLocalStack(config, { verbose: flags.verbose });
  const { admin } = stack;
  await new Promise<void>((resolve, reject) =>
    admin.loadModel({ model: MODEL_NAME }, new Metadata(), { deadline: new Date(Date.now() + 60_000) }, (error) => (error ? reject(error) : resolve())),
  );
  return stack;
}

function getStatus(admin: AdminClient): Promise<StatusResponse> {
  return callUnary((done) => admin.getStatus({}, done));
}

async function replicaState(admin: AdminClient): Promise<{ readyPids: number[]; runners: string }> {
  const status = await getStatus(admin);
  return {
    readyPids: status.runners.filter((runner) => runner.model === MODEL_NAME && runner.state === "ready").map((runner) => runner.pid),
    runners: status.runners.map((runner) => `${runner.id}:${runner.state}${runner.model ? `(${runner.model})` : ""}`).join(" "),
  };
}

// ---- main ---------------------------------------------------------------------------------

interface ConcRow {
  tokPerS: number;
  cpuMsPerToken: number;
}

async function main(): Promise<void> {
  if (!existsSync(MODEL_PATH)) throw new Error(`model file ${MODEL_PATH} is missing`);
  console.log(`decode-throughput: model ${path.relative(PROJECT_ROOT, MODEL_PATH)}, context ${CONTEXT}, threads 1, prompt ${JSON.stringify(PROMPT)}`);
  console.log(`  tokens ${TOKENS}, ttft requests ${TTFT_REQUESTS}, rounds ${ROUNDS}, concurrency ${CONCURRENCY.join(",")} x ${CONC_TOKENS} tokens, sequences ${SEQUENCES}`);
  console.log(`  load average at start: ${loadAverage()} (other work on the box disturbs wall-clock figures; CPU ms/token much less)\n`);

  const baseline = await Baseline.create(MODEL_PATH);
  const bootStarted = performance.now();
  const stack = await bootStack(1);
  const { readyPids: pids } = await replicaState(stack.admin);
  console.log(`stack up in ${fmt(performance.now() - bootStarted, 0)} ms (placement ${stack.placement.address}, gateway ${stack.gateway.address}, runner pid ${pids.join(",")})`);

  // warm-up: the first requests pay channel set-up and JIT; a few thousand tokens settle both paths
  for (let i = 0; i < 4; i++) {
    await baseline.generate(TOKENS);
    await gatewayGenerate(stack.inference, TOKENS);
  }

  // (a) one stream
  const singleBase: Measured<StreamResult>[] = [];
  const singleGw: Measured<StreamResult>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await alternately(
      round,
      async () => singleBase.push(await measure([], () => baseline.generate(TOKENS))),
      async () => singleGw.push(await measure(pids, () => gatewayGenerate(stack.inference, TOKENS))),
    );
  }
  const rate = (runs: Measured<StreamResult>[]) => median(runs.map((run) => decodeRate(run.value)));
  const e2e = (runs: Measured<StreamResult>[]) => median(runs.map((run) => run.value.tokens / (run.wallMs / 1000)));
  const cpu = (runs: Measured<StreamResult>[], pick: (run: Measured<StreamResult>) => number) => median(runs.map((run) => pick(run) / run.value.tokens));
  const baseRate = rate(singleBase);
  const gwRate = rate(singleGw);
  console.log(`\n(a) one stream of ${TOKENS} tokens, median of ${ROUNDS} (alternating)`);
  console.log(
    table(
      ["path", "decode tok/s", "end-to-end tok/s", "tokens", "CPU ms/tok self", "CPU ms/tok runner", "per-round decode tok/s"],
      [
        ["in-process", fmt(baseRate), fmt(e2e(singleBase)), singleBase[0]!.value.tokens, fmt(cpu(singleBase, (r) => r.selfCpuMs), 3), "-", singleBase.map((r) => fmt(decodeRate(r.value), 0)).join(" ")],
        [
          "gateway",
          fmt(gwRate),
          fmt(e2e(singleGw)),
          singleGw[0]!.value.tokens,
          fmt(cpu(singleGw, (r) => r.selfCpuMs), 3),
          fmt(cpu(singleGw, (r) => r.runnerCpuMs), 3),
          singleGw.map((r) => fmt(decodeRate(r.value), 0)).join(" "),
        ],
      ],
    ),
  );
  console.log(`ratio gateway/in-process: decode ${fmt(gwRate / baseRate, 3)}, end-to-end ${fmt(e2e(singleGw) / e2e(singleBase), 3)}  (goal >= 0.97)`);
  console.log(
    `per token: in-process ${fmt(1000 / baseRate, 3)} ms wall, gateway ${fmt(1000 / gwRate, 3)} ms wall (+${fmt(1000 / gwRate - 1000 / baseRate, 3)} ms); ` +
      `runner CPU/in-process CPU ${fmt(cpu(singleGw, (r) => r.runnerCpuMs) / cpu(singleBase, (r) => r.selfCpuMs), 3)}`,
  );
  const sameText = singleBase[0]!.value.text === singleGw[0]!.value.text;
  console.log(`greedy text identical on both paths: ${sameText ? "yes" : "NO"}`);
  if (!sameText) {
    console.log(`  in-process: ${JSON.stringify(singleBase[0]!.value.text.slice(0, 120))}`);
    console.log(`  gateway:    ${JSON.stringify(singleGw[0]!.value.text.slice(0, 120))}`);
  }

  // (b) TTFT of short requests
  const ttftBase: number[] = [];
  const ttftGw: number[] = [];
  for (let i = 0; i < TTFT_REQUESTS; i++) {
    const maxTokens = 1 + (i % 4);
    if (i % 2 === 0) {
      ttftBase.push((await baseline.generate(maxTokens)).ttftMs);
      ttftGw.push((await gatewayGenerate(stack.inference, maxTokens)).ttftMs);
    } else {
      ttftGw.push((await gatewayGenerate(stack.inference, maxTokens)).ttftMs);
      ttftBase.push((await baseline.generate(maxTokens)).ttftMs);
    }
  }
  console.log(`\n(b) TTFT over ${TTFT_REQUESTS} short requests (max_tokens 1..4, interleaved), ms`);
  const ttftRow = (name: string, values: number[]) => [name, fmt(median(values), 2), fmt(percentile(values, 90), 2), fmt(Math.min(...values), 2), fmt(Math.max(...values), 2)];
  console.log(table(["path", "p50", "p90", "min", "max"], [ttftRow("in-process", ttftBase), ttftRow("gateway", ttftGw)]));
  console.log(`added TTFT through the gateway: p50 ${fmt(median(ttftGw) - median(ttftBase), 2)} ms (goal <= 1 ms; the baseline has no prompt cache), p90 ${fmt(percentile(ttftGw, 90) - percentile(ttftBase, 90), 2)} ms`);

  // (c) concurrency on one runner
  const concBase = new Map<number, ConcRow>();
  const concOne = new Map<number, ConcRow>();
  const summarize = (runs: Measured<{ tokens: number; tokPerS: number }>[], cpuOf: (run: Measured<{ tokens: number }>) => number): ConcRow => ({
    tokPerS: median(runs.map((run) => run.value.tokPerS)),
    cpuMsPerToken: median(runs.map((run) => cpuOf(run) / run.value.tokens)),
  });
  for (const streams of CONCURRENCY) {
    const base: Measured<{ tokens: number; tokPerS: number }>[] = [];
    const gw: Measured<{ tokens: number; tokPerS: number }>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await alternately(
        round,
        async () => base.push(await measure([], () => concurrent(streams, () => baseline.generate(CONC_TOKENS, "multi")))),
        async () => gw.push(await measure(pids, () => concurrent(streams, () => gatewayGenerate(stack.inference, CONC_TOKENS)))),
      );
    }
    concBase.set(streams, summarize(base, (run) => run.selfCpuMs));
    concOne.set(streams, summarize(gw, (run) => run.selfCpuMs + run.runnerCpuMs));
  }
  await stack.stop();

  // (c) two replicas
  const notes: string[] = [];
  const concTwo = new Map<number, ConcRow>();
  if (flags["no-replicas"]) {
    notes.push("two replicas: skipped (--no-replicas)");
  } else {
    const two = await bootStack(2);
    let state = await replicaState(two.admin);
    const waitUntil = performance.now() + 15_000;
    while (state.readyPids.length < 2 && performance.now() < waitUntil) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      state = await replicaState(two.admin);
    }
    notes.push(`replicas {min: 2, max: 2}: ${state.readyPids.length} ready after LoadModel + up to 15 s (${state.runners})`);
    if (state.readyPids.length < 2) {
      // More streams than one runner's sequences should make placement add the second replica.
      await concurrent(SEQUENCES + 1, () => gatewayGenerate(two.inference, 50));
      const waitMore = performance.now() + 15_000;
      state = await replicaState(two.admin);
      while (state.readyPids.length < 2 && performance.now() < waitMore) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        state = await replicaState(two.admin);
      }
      notes.push(`  after a burst of ${SEQUENCES + 1} streams (> sequences ${SEQUENCES}): ${state.readyPids.length} ready (${state.runners})`);
    }
    const twoPids = state.readyPids;
    for (let i = 0; i < 2; i++) await gatewayGenerate(two.inference, TOKENS);
    for (const streams of CONCURRENCY) {
      const gw: Measured<{ tokens: number; tokPerS: number }>[] = [];
      let spread = "";
      for (let round = 0; round < ROUNDS; round++) {
        let peek: Promise<StatusResponse> | undefined;
        const timer = setTimeout(() => (peek = getStatus(two.admin)), 50);
        gw.push(await measure(twoPids, () => concurrent(streams, () => gatewayGenerate(two.inference, CONC_TOKENS))));
        clearTimeout(timer);
        if (round === 0 && peek) {
          const status = await peek;
          spread = status.runners.filter((runner) => runner.model === MODEL_NAME).map((runner) => runner.inFlight).join("+");
        }
      }
      notes.push(`  ${streams} stream(s): in flight per ready runner 50 ms in = ${spread || "n/a"}`);
      concTwo.set(streams, summarize(gw, (run) => run.selfCpuMs + run.runnerCpuMs));
    }
    await two.stop();
  }

  const rows = CONCURRENCY.map((streams) => {
    const base = concBase.get(streams)!;
    const one = concOne.get(streams)!;
    const two = concTwo.get(streams);
    return [
      streams,
      fmt(base.tokPerS),
      fmt(one.tokPerS),
      fmt(one.tokPerS / base.tokPerS, 3),
      two ? fmt(two.tokPerS) : "-",
      two ? fmt(two.tokPerS / base.tokPerS, 3) : "-",
      fmt(base.cpuMsPerToken, 3),
      fmt(one.cpuMsPerToken, 3),
      two ? fmt(two.cpuMsPerToken, 3) : "-",
    ];
  });
  console.log(`\n(c) aggregate tok/s, ${CONC_TOKENS} tokens per stream, wall from first call to last done, median of ${ROUNDS}`);
  console.log(`    in-process = one context with ${SEQUENCES} sequences, the streams run concurrently on it; CPU = all processes involved`);
  console.log(
    table(["streams", "in-process", "gw 1 runner", "1 runner/in-proc", "gw 2 replicas", "2 repl/in-proc", "CPU ms/tok in-proc", "CPU ms/tok 1 runner", "CPU ms/tok 2 repl"], rows),
  );
  for (const note of notes) console.log(note);
  console.log(`\nload average at end: ${loadAverage()}`);
}

runBounded(main, { timeLimitS: TIME_LIMIT_S, cleanup: stopAllStacks });
