/**
 * modelswap against llama.cpp's own multi-model server, side by side on the same files:
 * `llama-server` in router mode (`--models-dir`, `--models-max 1`) and modelswap with a budget
 * that holds the biggest model and nothing beside it, so that every round-robin request is for a
 * model that is not resident (a budget counts bytes, not models: the 100 MB model may load
 * beside the 1 MB one without an eviction; the output says what each swap-in displaced).
 *
 *   npm run bench:peer -- [--rounds 3] [--tokens 64] [--dir DIR] [--time-limit 1200]
 *       [--build-time-limit 2700] [--skip-memory | --only-memory] [--no-prompt-cache]
 *       [--scenario-models 10] [--scenario-size 120] [--scenario-budget 1200] [--verbose]
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
 *    (prompt cache on: a warm request re-uses the KV of the same prompt, as modelswap's runners
 *    do); --no-prompt-cache sends cache_prompt: false to llama-server only.
 * 4. Memory test: the five 100 MB models resident in each system (router `--models-max 5`;
 *    modelswap as deployed: `modelswap serve -c FILE`, its gateway process, its placement
 *    process and its runners, a 2 GiB budget and the default config's 0 spare runners); total
 *    VmRSS (and PSS) of each system's process tree.
 * 5. Scenario 1 in miniature: budget B (--scenario-budget MB) and --scenario-models distinct
 *    Q8_0 stand-ins of --scenario-size MB. The router loads them one by one (`--models-max` = all
 *    of them, i.e. `--models-max N` for growing N) until its total RSS passes B: it fits the
 *    largest N whose RSS stayed within B. modelswap gets B less its control plane's own RSS
 *    (gateway + placement, measured idle; a budget counts runners and models) and one request
 *    per model in turn: how many are resident at once, and its total RSS.
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
import {
  defaultPeerDir,
  getStatus,
  modelswapSettled,
  oneModelBudget,
  peerConfig,
  peerConfigDocument,
  PEER_CONTEXT,
  PEER_THREADS,
  preparePeerFiles,
  prepareScenarioFiles,
  warmPageCache,
  type PeerModel,
} from "./lib/peer-models.js";
import { modelswapRole, startServe, stopAllServes } from "./lib/modelswap-serve.js";
import { processName, processTree, signalTree, treeMemory, type TreeMemory } from "./lib/process-tree.js";
import { fmt, loadAverage, median, positiveInt } from "./lib/report.js";
import { runBounded } from "./lib/run-bounded.js";

const MB = 1e6;
const THREADS = PEER_THREADS;
const CONTEXT = PEER_CONTEXT;
const PROMPT = "Once upon a time";
const REQUEST_TIMEOUT_MS = 120_000;

const HELP =
  "npm run bench:peer -- [--rounds 3] [--tokens 64] [--dir DIR] [--time-limit 1200] [--build-time-limit 2700] [--skip-memory | --only-memory] [--no-prompt-cache]\n" +
  "    [--scenario-models 10] [--scenario-size 120] [--scenario-budget 1200] [--verbose]\n" +
  "  env: MODELSWAP_LLAMA_SERVER_DIR (llama-server build folder), MODELSWAP_PEER_DIR (test files)\n";
const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    dir: { type: "string", default: defaultPeerDir() },
    "time-limit": { type: "string", default: "1200" },
    "build-time-limit": { type: "string", default: "2700" },
    "skip-memory": { type: "boolean", default: false },
    "only-memory": { type: "boolean", default: false },
    "scenario-models": { type: "string", default: "10" },
    "scenario-size": { type: "string", default: "120" },
    "scenario-budget": { type: "string", default: "1200" },
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
const SCENARIO_MODELS = positiveInt(flags["scenario-models"]!, "--scenario-models");
const SCENARIO_SIZE_MB = positiveInt(flags["scenario-size"]!, "--scenario-size");
const SCENARIO_BUDGET_BYTES = positiveInt(flags["scenario-budget"]!, "--scenario-budget") * MB;
if (flags["skip-memory"] && flags["only-memory"]) throw new Error("--skip-memory and --only-memory exclude each other");

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

/** The swap test: warm-up round, then ROUNDS rounds, the systems alternating; fills `samples`, returns whether the greedy texts matched. */
async function swapTest(binary: string, files: Awaited<ReturnType<typeof preparePeerFiles>>, budgetBytes: number, samples: Sample[]): Promise<string[]> {
  const router = await phase("start router", 60, () =>
    startRouter(binary, files.swapDir, 1, "router-swap.log"),
  );
  for (const model of files.swap)
    if (!router.modelIds.includes(model.name)) throw new Error(`the router does not list ${model.name} (it lists ${router.modelIds.join(", ")})`);
  const stack = await phase("start modelswap", 60, () => bootModelswap(files.swap, budgetBytes));
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
  await stack.stop();
  await router.stop();
  return files.swap.map((model) => {
    const text = (system: SystemName) => samples.find((sample) => sample.system === system && sample.model === model.name)?.timing.text;
    return `${model.name} ${text("router") === text("modelswap") ? "same" : "DIFFERENT"}`;
  });
}

// ---- memory tests ---------------------------------------------------------------------------

/** The router process and its per-model children, told apart (both are llama-server). */
const routerRoles = (routerPid: number) => (pid: number) => (pid === routerPid ? "llama-server router" : `${processName(pid) || "?"} model instance`);
/** llama.cpp's router on `modelsDir` with this bench's threads and context, holding at most `modelsMax` models; its log in DIR. */
const startRouter = (binary: string, modelsDir: string, modelsMax: number, logName: string) =>
  startLlamaRouter({ binary, modelsDir, modelsMax, threads: THREADS, contextSize: CONTEXT, logPath: path.join(DIR, logName), startTimeoutMs: 30_000 });
const serveStarted = (config: Record<string, unknown>, name: string) =>
  startServe(config, path.join(DIR, `${name}.json`), { verbose: flags.verbose, startTimeoutMs: 60_000 });

async function routerMemory(binary: string, models: PeerModel[], modelsDir: string): Promise<TreeMemory> {
  const router = await startRouter(binary, modelsDir, models.length, "router-memory.log");
  try {
    for (const model of models) await routerCompletion(router.url, model.name, PROMPT, 4, REQUEST_TIMEOUT_MS);
    await routerSettled(router);
    const loaded = await router.loadedModels();
    if (loaded.length !== models.length) throw new Error(`the router holds ${loaded.length} of ${models.length} models (${loaded.join(", ")})`);
    return treeMemory(processTree(router.pid), routerRoles(router.pid));
  } finally {
    await router.stop();
  }
}

/** The five models resident in `modelswap serve` as deployed (default config: no spare runner). */
async function modelswapMemory(models: PeerModel[]): Promise<TreeMemory> {
  const serve = await serveStarted(peerConfigDocument(models, 2 * 1024 ** 3, 0), "modelswap-memory");
  try {
    for (const model of models) await modelswapCompletion(serve.inference, model.name, 4);
    await modelswapSettled(serve.admin);
    const resident = await modelswapResident(serve.admin);
    if (resident.length !== models.length) throw new Error(`modelswap holds ${resident.length} of ${models.length} models (${resident.join(", ")})`);
    return treeMemory(serve.pids(), modelswapRole);
  } finally {
    await serve.stop();
  }
}

interface ScenarioStep {
  /** Models resident after the request. */
  resident: number;
  memory: TreeMemory;
}

interface ScenarioResult {
  /** The most models resident at once while the total RSS stayed within the budget. */
  fits: number;
  steps: ScenarioStep[];
  /** modelswap: the budget it was given (B less its control plane). */
  budgetBytes?: number;
  controlBytes?: number;
}

const fitsWithin = (steps: ScenarioStep[], budgetBytes: number) => Math.max(0, ...steps.filter((step) => step.memory.rssBytes <= budgetBytes).map((step) => step.resident));

/** The router loads the models one by one until its total RSS passes the budget. */
async function routerScenario(binary: string, models: PeerModel[], modelsDir: string, budgetBytes: number): Promise<ScenarioResult> {
  const router = await startRouter(binary, modelsDir, models.length, "router-scenario.log");
  const steps: ScenarioStep[] = [];
  try {
    for (const model of models) {
      await routerCompletion(router.url, model.name, PROMPT, 4, REQUEST_TIMEOUT_MS);
      await routerSettled(router);
      const step = { resident: (await router.loadedModels()).length, memory: treeMemory(processTree(router.pid), routerRoles(router.pid)) };
      steps.push(step);
      if (flags.verbose) console.log(`    router: ${step.resident} resident, RSS ${mb(step.memory.rssBytes)} MB`);
      if (step.memory.rssBytes > budgetBytes) break;
    }
    return { fits: fitsWithin(steps, budgetBytes), steps };
  } finally {
    await router.stop();
  }
}

/**
 * modelswap as deployed, its budget B less what its gateway and placement processes take idle
 * (a budget counts runners and the models they hold; the control plane is outside it): one
 * request per model in turn, residents and total RSS after each.
 */
async function modelswapScenario(models: PeerModel[], budgetBytes: number): Promise<ScenarioResult> {
  let controlBytes: number;
  {
    const serve = await serveStarted(peerConfigDocument(models, budgetBytes, 0), "modelswap-scenario-idle");
    try {
      await modelswapSettled(serve.admin);
      const memory = treeMemory(serve.pids(), modelswapRole);
      // gateway and placement only: runners, and the binding test node-llama-cpp runs in a child of a starting runner, are not the control plane
      controlBytes = [...memory.byName].filter(([role]) => role === "serve (gateway)" || role === "placement").reduce((sum, [, entry]) => sum + entry.rssBytes, 0);
    } finally {
      await serve.stop();
    }
  }
  const given = budgetBytes - controlBytes;
  const serve = await serveStarted(peerConfigDocument(models, given, 0), "modelswap-scenario");
  const steps: ScenarioStep[] = [];
  try {
    for (const model of models) {
      await modelswapCompletion(serve.inference, model.name, 4);
      await modelswapSettled(serve.admin);
      const step = { resident: (await modelswapResident(serve.admin)).length, memory: treeMemory(serve.pids(), modelswapRole) };
      steps.push(step);
      if (flags.verbose) console.log(`    modelswap: ${step.resident} resident, RSS ${mb(step.memory.rssBytes)} MB`);
    }
    return { fits: fitsWithin(steps, budgetBytes), steps, budgetBytes: given, controlBytes };
  } finally {
    await serve.stop();
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
  const scenario = flags["skip-memory"] ? undefined : await phase("write scenario files", 900, () => prepareScenarioFiles(DIR, SCENARIO_MODELS, SCENARIO_SIZE_MB));
  const allFiles = [...files.swap, ...files.memory, ...(scenario?.models ?? [])];
  await phase("warm page cache", 120, () => warmPageCache(allFiles));
  let calibration: Awaited<ReturnType<typeof oneModelBudget>> | undefined;
  if (!flags["only-memory"]) {
    console.log(`calibrating modelswap's one-model budget (each model loaded once under 16 GiB)…`);
    calibration = await phase("calibrate", 300, () => oneModelBudget(files.swap, { verbose: flags.verbose }));
    console.log(
      `  footprints ${files.swap.map((model) => `${model.name} ${mb(calibration!.footprints.get(model.name) ?? 0)} MB`).join(", ")}; ` +
        `a runner's own RSS ${mb(calibration.runnerBytes)} MB; budget ${mb(calibration.budgetBytes)} MB (biggest + 2 runners + half the smallest)`,
    );
  }

  const binary = await building;
  const version = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const versionLine = `${version.stdout}${version.stderr}`.split("\n").find((line) => line.startsWith("version")) ?? "version unknown";
  console.log(`llama-server: ${binary} (${versionLine.trim()}, node-llama-cpp's llama.cpp ${llamaCppReleaseTag()})`);

  await phase("warm page cache", 120, () => warmPageCache(allFiles));

  const samples: Sample[] = [];
  let sameText: string[] = [];
  if (calibration) sameText = await swapTest(binary, files, calibration.budgetBytes, samples);

  let memory: Record<SystemName, TreeMemory> | undefined;
  let scenarioResults: Record<SystemName, ScenarioResult> | undefined;
  if (scenario) {
    console.log("memory test: five 100 MB F16 models resident in each…");
    const routerTree = await phase("memory test: router", 180, () => routerMemory(binary, files.memory, files.memoryDir));
    const modelswapTree = await phase("memory test: modelswap", 180, () => modelswapMemory(files.memory));
    memory = { router: routerTree, modelswap: modelswapTree };
    console.log(`scenario 1 in miniature: budget ${mb(SCENARIO_BUDGET_BYTES)} MB, ${SCENARIO_MODELS} × ${SCENARIO_SIZE_MB} MB Q8_0…`);
    const routerRun = await phase("scenario: router", 600, () => routerScenario(binary, scenario.models, scenario.dir, SCENARIO_BUDGET_BYTES));
    const modelswapRun = await phase("scenario: modelswap", 600, () => modelswapScenario(scenario.models, SCENARIO_BUDGET_BYTES));
    scenarioResults = { router: routerRun, modelswap: modelswapRun };
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
  const swapped = samples.length > 0;
  if (swapped) {
    for (const model of files.swap) row(`swap-in TTFT ${model.label}`, (system) => pick(system, model.name, "swap").map((s) => s.timing.ttftMs), 1, " ms");
    for (const model of files.swap) row(`warm TTFT ${model.label}`, (system) => pick(system, model.name, "warm").map((s) => s.timing.ttftMs), 1, " ms");
    // decode: per round, the swap-in and the warm request together
    const perRound = (system: SystemName, model: string, of: (timings: StreamTiming[]) => number) =>
      Array.from({ length: ROUNDS }, (_, round) => of(pick(system, model).filter((s) => s.round === round).map((s) => s.timing))).filter((value) => Number.isFinite(value));
    for (const model of files.swap) row(`decode tok/s ${model.label}`, (system) => perRound(system, model.name, decodeRate), 0, "");
  }
  if (memory) {
    const { router, modelswap } = memory;
    rows.push(["total RSS, five 100 MB F16 resident", `${mb(router.rssBytes)} MB`, `${mb(modelswap.rssBytes)} MB`, fmt(modelswap.rssBytes / router.rssBytes, 2)]);
    rows.push(["total PSS (shared pages split), same", `${mb(router.pssBytes)} MB`, `${mb(modelswap.pssBytes)} MB`, fmt(modelswap.pssBytes / router.pssBytes, 2)]);
  }
  if (scenarioResults) {
    const { router, modelswap } = scenarioResults;
    const peak = (result: ScenarioResult) => Math.max(...result.steps.map((step) => step.memory.rssBytes));
    const last = modelswap.steps.at(-1)?.resident ?? 0;
    rows.push([
      `scenario 1: ${SCENARIO_SIZE_MB} MB Q8_0 models resident at once within B = ${mb(SCENARIO_BUDGET_BYTES)} MB total RSS`,
      `${router.fits}`,
      `${modelswap.fits} (peak RSS ${mb(peak(modelswap))} MB)${last !== modelswap.fits ? `; ${last} after the last request` : ""}`,
      fmt(modelswap.fits / router.fits, 2),
    ]);
  }

  const notSwaps = samples.filter((sample) => sample.kind === "swap" && sample.wasResident).length;
  const unsettled = samples.filter((sample) => sample.unsettled).length;
  console.log("");
  console.log(
    `${machine()}; threads ${THREADS}, ctx ${CONTEXT}, 1 sequence; ` +
      (swapped ? `${TOKENS}-token requests, greedy, EOS ignored; page cache warm; ${ROUNDS} rounds (median (min–max)); ` : "memory tests only; page cache warm; ") +
      `llama.cpp ${versionLine.replace(/^version:\s*/, "").trim()}; load average now ${loadAverage()}`,
  );
  console.log("");
  console.log(`| | llama.cpp router${swapped ? " (`--models-max 1`)" : ""} | modelswap${swapped ? " (one-model budget)" : ""} | modelswap ÷ router |`);
  console.log("|---|---|---|---|");
  for (const cells of rows) console.log(`| ${cells.join(" | ")} |`);
  console.log("");
  if (swapped) {
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
    console.log(
      flags["no-prompt-cache"]
        ? "llama-server: cache_prompt false (every request evaluates its whole prompt; modelswap's runners always reuse a cached prefix); warm-up run at load (its default)"
        : "llama-server defaults kept: prompt cache on (a warm request re-uses the KV of the same prompt and evaluates only its last token, " +
            "as modelswap's runners do), warm-up run at load",
    );
  }
  if (memory) {
    console.log(`RSS router (five resident):    ${memory.router.parts}`);
    console.log(`RSS modelswap (five resident): ${memory.modelswap.parts} (modelswap serve as deployed, spare_runners 0)`);
  }
  if (scenarioResults) {
    const { router, modelswap } = scenarioResults;
    const steps = (result: ScenarioResult) => result.steps.map((step) => `${step.resident}:${mb(step.memory.rssBytes)}`).join(" ");
    console.log(`scenario 1, router (resident:total RSS MB after each request): ${steps(router)}`);
    console.log(
      `scenario 1, modelswap: budget ${mb(modelswap.budgetBytes ?? 0)} MB = B − ${mb(modelswap.controlBytes ?? 0)} MB (gateway + placement idle); ` +
        `after each request: ${steps(modelswap)}; at the end ${modelswap.steps.at(-1)?.memory.parts ?? "n/a"}`,
    );
  }
}

runBounded(main, {
  timeLimitS: BUILD_TIME_LIMIT_S + TIME_LIMIT_S,
  cleanup: async () => {
    stopLlamaServerBuild();
    await Promise.race([Promise.all([stopAllRouters(), stopAllStacks(), stopAllServes()]), sleep(4000)]);
    // whatever did not stop (runners, router instances: still this process's descendants) ends here, by pid
    signalTree(processTree(process.pid).filter((pid) => pid !== process.pid), "SIGKILL");
  },
});
