/**
 * modelswap against llama.cpp's own multi-model server, side by side on the same files:
 * `llama-server` in router mode (`--models-dir`, `--models-max 1`) and modelswap with a budget
 * that holds the biggest model and nothing beside it, so that every round-robin request is for a
 * model that is not resident (a budget counts bytes, not models: the 100 MB model may load
 * beside the 1 MB one without an eviction; the output says what each swap-in displaced).
 *
 *   npm run bench:peer -- [--rounds 3] [--tokens 64] [--dir DIR] [--time-limit 1200]
 *       [--build-time-limit 2700] [--skip-memory] [--no-prompt-cache] [--verbose]
 *
 * 1. Builds `llama-server` once from the llama.cpp source node-llama-cpp ships (see
 *    lib/llama-server-build.ts; ~12 minutes on 2 cores, then reused from ~/.cache/modelswap).
 * 2. Writes the test files under --dir (default $MODELSWAP_PEER_DIR or ~/.cache/modelswap/peer-bench;
 *    reused after): a copy of models/stories260K.gguf and random-weight F16 models of 100 MB and
 *    600 MB (forge), plus five distinct 100 MB F16 models for the memory test (see lib/peer-models.ts).
 * 3. Swap test, page cache warm, 1 thread, context 2048, one sequence: in each round and for each
 *    model in turn, one request for it while another model is resident (swap-in TTFT), then one
 *    more (warm TTFT); 64 tokens each, greedy, EOS ignored. Decode tok/s: tokens after the first
 *    message / time from first to last message, over both requests. Each request starts on an idle
 *    system (no load, unload or runner start in progress). One unmeasured warm-up round, then
 *    `rounds` rounds, the two systems alternating which goes first. llama-server keeps its defaults
 *    (prompt cache on: a warm request re-uses the KV of the same prompt); --no-prompt-cache sends
 *    cache_prompt: false so that both evaluate the whole prompt.
 * 4. Memory test: the five 100 MB models resident in each system (router `--models-max 5`,
 *    modelswap with a 2 GiB budget); total VmRSS of each system's process tree.
 * Prints one Markdown table: medians, min–max in brackets, and modelswap ÷ router per row.
 * A benchmark prints figures; it asserts nothing. Every process it starts is ended by pid or
 * process group at the end, on a time limit, an error or SIGINT.
 */
import type { ServiceError } from "@grpc/grpc-js";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { spawnSync } from "node:child_process";
import type { AdminClient } from "../gen/modelswap/v1/admin.js";
import { ModelState, type GenerateResponse, type InferenceClient } from "../gen/modelswap/v1/inference.js";
import { ensureLlamaServer, llamaCppReleaseTag, stopLlamaServerBuild } from "./lib/llama-server-build.js";
import { decodeRate, routerCompletion, startLlamaRouter, stopAllRouters, type LlamaRouter, type StreamTiming } from "./lib/llama-router.js";
import { startLocalStack, stopAllStacks } from "./lib/local-stack.js";
import { defaultPeerDir, getStatus, modelswapSettled, oneModelBudget, peerConfig, PEER_CONTEXT, PEER_THREADS, preparePeerFiles, warmPageCache, type PeerModel } from "./lib/peer-models.js";
import { processName, processTree, signalTree, vmRssBytes } from "./lib/process-tree.js";
import { fmt, loadAverage, median, positiveInt } from "./lib/report.js";
import { runBounded } from "./lib/run-bounded.js";

const MB = 1e6;
const THREADS = PEER_THREADS;
const CONTEXT = PEER_CONTEXT;
const PROMPT = "Once upon a time";
const REQUEST_TIMEOUT_MS = 120_000;

const HELP =
  "npm run bench:peer -- [--rounds 3] [--tokens 64] [--dir DIR] [--time-limit 1200] [--build-time-limit 2700] [--skip-memory] [--no-prompt-cache] [--verbose]\n" +
  "  env: MODELSWAP_LLAMA_SERVER_DIR (llama-server build folder), MODELSWAP_PEER_DIR (test files)\n";
const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    dir: { type: "string", default: defaultPeerDir() },
    "time-limit": { type: "string", default: "1200" },
    "build-time-limit": { type: "string", default: "2700" },
    "skip-memory": { type: "boolean", default: false },
    "no-prompt-cache": { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const ROUNDS = positiveInt(flags.rounds!, "--rounds");
const TOKENS = positiveInt(flags.tokens!, "--tokens");
const DIR = path.resolve(flags.dir!);
const TIME_LIMIT_S = positiveInt(flags["time-limit"]!, "--time-limit");
const BUILD_TIME_LIMIT_S = positiveInt(flags["build-time-limit"]!, "--build-time-limit");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => fmt(bytes / MB, 0);

/** Rejects when `promise` takes longer than `seconds`: every phase is bounded. */
async function phase<T>(name: string, seconds: number, run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`phase "${name}" ran past its ${seconds} s limit`)), seconds * 1000);
  });
  try {
    return await Promise.race([run(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- modelswap ------------------------------------------------------------------------------

const bootModelswap = (models: readonly PeerModel[], budgetBytes: number) => startLocalStack(peerConfig(models, budgetBytes), { verbose: flags.verbose });

function modelswapCompletion(client: InferenceClient, model: string, maxTokens: number): Promise<StreamTiming> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let firstMs = 0;
    let lastMs = 0;
    let firstMessageTokens = 0;
    let tokens = 0;
    let text = "";
    let serverTokPerS = Number.NaN;
    let done = false;
    const call = client.generate(
      { model, prompt: PROMPT, maxTokens, task: "", resumable: false, sampling: { temperature: 0, repeatPenalty: 1, ignoreEos: true, stop: [] } },
      { deadline: new Date(Date.now() + REQUEST_TIMEOUT_MS) },
    );
    call.on("data", (message: GenerateResponse) => {
      const event = message.event;
      if (event?.$case === "token") {
        const now = performance.now();
        if (firstMs === 0) {
          firstMs = now;
          firstMessageTokens = event.value.tokens || 1;
        }
        lastMs = now;
        text += event.value.text;
      } else if (event?.$case === "done") {
        done = true;
        tokens = event.value.usage?.completionTokens ?? 0;
        serverTokPerS = event.value.timings?.tokensPerSecond ?? Number.NaN;
      }
    });
    call.on("error", (error: ServiceError) => reject(new Error(`modelswap Generate ${model}: ${error.code} ${error.details}`)));
    call.on("end", () => {
      if (!done || firstMs === 0) return reject(new Error(`modelswap Generate ${model}: stream ended without tokens and done`));
      resolve({ ttftMs: firstMs - started, decodeMs: lastMs - firstMs, tokens, firstMessageTokens, text, serverTokPerS });
    });
  });
}

async function modelswapResident(admin: AdminClient): Promise<string[]> {
  const status = await getStatus(admin);
  return status.models.filter((entry) => entry.info?.state === ModelState.MODEL_STATE_RESIDENT).map((entry) => entry.info!.name);
}

// ---- the router -----------------------------------------------------------------------------

async function routerSettled(router: LlamaRouter, timeoutMs = 20_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (!(await router.busy())) return true;
    await sleep(25);
  }
  return false;
}

// ---- the swap test --------------------------------------------------------------------------

type SystemName = "router" | "modelswap";

interface Sample {
  system: SystemName;
  round: number;
  model: string;
  kind: "swap" | "warm";
  timing: StreamTiming;
  /** The model was resident before a "swap" request (the budget held two): not a swap. */
  wasResident: boolean;
  /** The system had not settled before the request. */
  unsettled: boolean;
  /** Models resident before the request that were not after it. */
  displaced: string[];
}

interface SwapSystem {
  name: SystemName;
  resident(): Promise<string[]>;
  settled(): Promise<boolean>;
  complete(model: string, maxTokens: number): Promise<StreamTiming>;
}

async function runRound(system: SwapSystem, models: PeerModel[], round: number, samples: Sample[] | undefined): Promise<void> {
  for (const model of models) {
    for (const kind of ["swap", "warm"] as const) {
      const unsettled = !(await system.settled());
      const before = await system.resident();
      const wasResident = kind === "swap" && before.includes(model.name);
      const timing = await system.complete(model.name, TOKENS);
      const after = await system.resident();
      const displaced = before.filter((name) => !after.includes(name));
      if (timing.tokens !== TOKENS) throw new Error(`${system.name} ${model.name}: ${timing.tokens} tokens, expected ${TOKENS} (EOS ignored)`);
      samples?.push({ system: system.name, round, model: model.name, kind, timing, wasResident, unsettled, displaced });
      if (flags.verbose)
        console.log(`    ${system.name} ${model.name} ${kind}: ttft ${fmt(timing.ttftMs)} ms, ${fmt(decodeRate([timing]), 0)} tok/s${wasResident ? " (was resident)" : ""}`);
    }
  }
}

// ---- memory test ----------------------------------------------------------------------------

interface TreeMemory {
  totalBytes: number;
  parts: string;
}

function treeMemory(pids: number[]): TreeMemory {
  const byName = new Map<string, { count: number; bytes: number }>();
  let totalBytes = 0;
  for (const pid of pids) {
    const bytes = vmRssBytes(pid);
    totalBytes += bytes;
    const name = pid === process.pid ? "serve (gateway + placement, this process)" : processName(pid) || "?";
    const entry = byName.get(name) ?? { count: 0, bytes: 0 };
    byName.set(name, { count: entry.count + 1, bytes: entry.bytes + bytes });
  }
  const parts = [...byName].map(([name, entry]) => `${entry.count} × ${name} ${mb(entry.bytes)} MB`).join(", ");
  return { totalBytes, parts };
}

async function routerMemory(binary: string, models: PeerModel[], modelsDir: string): Promise<TreeMemory> {
  const router = await startLlamaRouter({
    binary,
    modelsDir,
    modelsMax: models.length,
    threads: THREADS,
    contextSize: CONTEXT,
    logPath: path.join(DIR, "router-memory.log"),
    startTimeoutMs: 30_000,
  });
  try {
    for (const model of models) await routerCompletion(router.url, model.name, PROMPT, 4, REQUEST_TIMEOUT_MS);
    await routerSettled(router);
    const loaded = await router.loadedModels();
    if (loaded.length !== models.length) throw new Error(`the router holds ${loaded.length} of ${models.length} models (${loaded.join(", ")})`);
    return treeMemory(processTree(router.pid));
  } finally {
    await router.stop();
  }
}

async function modelswapMemory(models: PeerModel[]): Promise<TreeMemory> {
  const stack = await bootModelswap(models, 2 * 1024 ** 3);
  try {
    for (const model of models) await modelswapCompletion(stack.inference, model.name, 4);
    await modelswapSettled(stack.admin);
    const resident = await modelswapResident(stack.admin);
    if (resident.length !== models.length) throw new Error(`modelswap holds ${resident.length} of ${models.length} models (${resident.join(", ")})`);
    return treeMemory(processTree(process.pid));
  } finally {
    await stack.stop();
  }
}

// ---- report ---------------------------------------------------------------------------------

function machine(): string {
  let cpu = os.cpus()[0]?.model ?? "unknown CPU";
  cpu = cpu.replace(/\s+/g, " ").trim();
  return `${cpu}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 1024 ** 3, 0)} GiB, ${os.platform()} ${os.arch()}`;
}

/** "median (min–max)" */
function spread(values: number[], digits: number, unit = ""): string {
  if (values.length === 0) return "n/a";
  const format = (value: number) => Number(value.toFixed(digits)).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return `${format(median(values))}${unit} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`bench:peer — llama.cpp router vs modelswap; load average at start: ${loadAverage()}`);
  // The build (once; minutes) runs while the files are written and modelswap is calibrated.
  const building = phase("build llama-server", BUILD_TIME_LIMIT_S, () => ensureLlamaServer({ timeLimitS: BUILD_TIME_LIMIT_S }));
  building.catch(() => {}); // awaited below

  const files = await phase("write test files", 900, () => preparePeerFiles(DIR));
  await phase("warm page cache", 120, () => warmPageCache([...files.swap, ...files.memory]));
  console.log(`calibrating modelswap's one-model budget (each model loaded once under 16 GiB)…`);
  const calibration = await phase("calibrate", 300, () => oneModelBudget(files.swap, { verbose: flags.verbose }));
  console.log(
    `  footprints ${files.swap.map((model) => `${model.name} ${mb(calibration.footprints.get(model.name) ?? 0)} MB`).join(", ")}; ` +
      `a runner's own RSS ${mb(calibration.runnerBytes)} MB; budget ${mb(calibration.budgetBytes)} MB (biggest + 2 runners + half the smallest)`,
  );

  const binary = await building;
  const version = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const versionLine = `${version.stdout}${version.stderr}`.split("\n").find((line) => line.startsWith("version")) ?? "version unknown";
  console.log(`llama-server: ${binary} (${versionLine.trim()}, node-llama-cpp's llama.cpp ${llamaCppReleaseTag()})`);

  await phase("warm page cache", 120, () => warmPageCache([...files.swap, ...files.memory]));

  const router = await phase("start router", 60, () =>
    startLlamaRouter({ binary, modelsDir: files.swapDir, modelsMax: 1, threads: THREADS, contextSize: CONTEXT, logPath: path.join(DIR, "router-swap.log"), startTimeoutMs: 30_000 }),
  );
  for (const model of files.swap)
    if (!router.modelIds.includes(model.name)) throw new Error(`the router does not list ${model.name} (it lists ${router.modelIds.join(", ")})`);
  const stack = await phase("start modelswap", 60, () => bootModelswap(files.swap, calibration.budgetBytes));
  const systems: Record<SystemName, SwapSystem> = {
    router: {
      name: "router",
      resident: () => router.loadedModels(),
      settled: () => routerSettled(router),
      complete: (model, maxTokens) => routerCompletion(router.url, model, PROMPT, maxTokens, REQUEST_TIMEOUT_MS, { cachePrompt: !flags["no-prompt-cache"] }),
    },
    modelswap: {
      name: "modelswap",
      resident: () => modelswapResident(stack.admin),
      settled: () => modelswapSettled(stack.admin),
      complete: (model, maxTokens) => modelswapCompletion(stack.inference, model, maxTokens),
    },
  };

  const samples: Sample[] = [];
  await phase("swap test warm-up round", 300, async () => {
    await runRound(systems.router, files.swap, -1, undefined);
    await runRound(systems.modelswap, files.swap, -1, undefined);
  });
  for (let round = 0; round < ROUNDS; round++) {
    const order: SystemName[] = round % 2 === 0 ? ["modelswap", "router"] : ["router", "modelswap"];
    await phase(`swap test round ${round + 1}`, 300, async () => {
      for (const name of order) await runRound(systems[name], files.swap, round, samples);
    });
    console.log(`  round ${round + 1}/${ROUNDS} done`);
  }
  const sameText = files.swap.map((model) => {
    const text = (system: SystemName) => samples.find((sample) => sample.system === system && sample.model === model.name)?.timing.text;
    return `${model.name} ${text("router") === text("modelswap") ? "same" : "DIFFERENT"}`;
  });
  await stack.stop();
  await router.stop();

  let memory: Record<SystemName, TreeMemory> | undefined;
  if (!flags["skip-memory"]) {
    console.log("memory test: five 100 MB F16 models resident in each…");
    const routerTree = await phase("memory test: router", 180, () => routerMemory(binary, files.memory, files.memoryDir));
    const modelswapTree = await phase("memory test: modelswap", 180, () => modelswapMemory(files.memory));
    memory = { router: routerTree, modelswap: modelswapTree };
  }

  // ---- the table ----
  const pick = (system: SystemName, model: string, kind?: "swap" | "warm") =>
    samples.filter((sample) => sample.system === system && sample.model === model && (kind === undefined || sample.kind === kind));
  const rows: string[][] = [];
  const row = (label: string, values: (system: SystemName) => number[], digits: number, unit: string) => {
    const router = values("router");
    const modelswap = values("modelswap");
    rows.push([label, spread(router, digits, unit), spread(modelswap, digits, unit), fmt(median(modelswap) / median(router), 2)]);
  };
  for (const model of files.swap) row(`swap-in TTFT ${model.label}`, (system) => pick(system, model.name, "swap").map((s) => s.timing.ttftMs), 1, " ms");
  for (const model of files.swap) row(`warm TTFT ${model.label}`, (system) => pick(system, model.name, "warm").map((s) => s.timing.ttftMs), 1, " ms");
  // decode: per round, the swap-in and the warm request together
  const perRound = (system: SystemName, model: string, of: (timings: StreamTiming[]) => number) =>
    Array.from({ length: ROUNDS }, (_, round) => of(pick(system, model).filter((s) => s.round === round).map((s) => s.timing))).filter((value) => Number.isFinite(value));
  for (const model of files.swap) row(`decode tok/s ${model.label}`, (system) => perRound(system, model.name, decodeRate), 0, "");
  if (memory)
    rows.push([
      "total RSS, five 100 MB F16 resident",
      `${mb(memory.router.totalBytes)} MB`,
      `${mb(memory.modelswap.totalBytes)} MB`,
      fmt(memory.modelswap.totalBytes / memory.router.totalBytes, 2),
    ]);

  const notSwaps = samples.filter((sample) => sample.kind === "swap" && sample.wasResident).length;
  const unsettled = samples.filter((sample) => sample.unsettled).length;
  console.log("");
  console.log(
    `${machine()}; threads ${THREADS}, ctx ${CONTEXT}, 1 sequence; ${TOKENS}-token requests, greedy, EOS ignored; page cache warm; ` +
      `${ROUNDS} rounds (median (min–max)); llama.cpp ${versionLine.replace(/^version:\s*/, "").trim()}; load average now ${loadAverage()}`,
  );
  console.log("");
  console.log("| | llama.cpp router (`--models-max 1`) | modelswap (one-model budget) | modelswap ÷ router |");
  console.log("|---|---|---|---|");
  for (const cells of rows) console.log(`| ${cells.join(" | ")} |`);
  console.log("");
  console.log(`swap-in requests that found their model already resident: ${notSwaps} (0 = every swap-in request swapped)`);
  if (unsettled > 0) console.log(`requests sent before the system had settled (no load, unload or runner start in progress; waited 20 s): ${unsettled}`);
  for (const system of ["router", "modelswap"] as const) {
    const displaced = files.swap.map((model) => {
      const lists = new Set(pick(system, model.name, "swap").map((sample) => sample.displaced.join("+") || "nothing"));
      return `${model.label} displaced ${[...lists].join(" or ")}`;
    });
    console.log(`${system} swap-ins: ${displaced.join("; ")}`);
  }
  const serverRate = (system: SystemName, model: string) => fmt(median(pick(system, model).map((s) => s.timing.serverTokPerS)), 0);
  console.log(
    `decode tok/s as each server reports it (llama-server timings.predicted_per_second; modelswap done.timings.tokens_per_second), median: ` +
      files.swap.map((model) => `${model.label} ${serverRate("router", model.name)} vs ${serverRate("modelswap", model.name)}`).join(", "),
  );
  console.log(`greedy text router vs modelswap: ${sameText.join(", ")}`);
  if (memory) {
    console.log(`RSS router:    ${memory.router.parts}`);
    console.log(`RSS modelswap: ${memory.modelswap.parts}`);
  }
  console.log(
    flags["no-prompt-cache"]
      ? "llama-server: cache_prompt false (every request evaluates its whole prompt, as modelswap does); warm-up run at load (its default)"
      : "llama-server defaults kept: prompt cache on (a warm request re-uses the KV of the same prompt and evaluates only its last token; " +
          "modelswap evaluates the whole prompt: --no-prompt-cache compares equal work), warm-up run at load",
  );
}

runBounded(main, {
  timeLimitS: BUILD_TIME_LIMIT_S + TIME_LIMIT_S,
  cleanup: async () => {
    stopLlamaServerBuild();
    await Promise.race([Promise.all([stopAllRouters(), stopAllStacks()]), sleep(4000)]);
    // whatever did not stop (runners, router instances: still this process's descendants) ends here, by pid
    signalTree(processTree(process.pid).filter((pid) => pid !== process.pid), "SIGKILL");
  },
});
