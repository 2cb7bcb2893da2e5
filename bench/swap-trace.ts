/**
 * Swaps under a RAM budget: replays one seeded request trace through the gateway for each
 * eviction policy, then times one swap of the biggest model from page cache and from disk.
 *
 *   npx tsc -p . && node dist/bench/swap-trace.js [--sizes 50,80,100,120] [--tiny-copies 2]
 *       [--requests 60] [--seed 42] [--zipf 1.0] [--max-burst 3] [--max-tokens 8]
 *       [--budget-fraction 0.4] [--policies lru,cost] [--swap-rounds 3] [--dir /tmp/modelswap-bench]
 *       [--time-limit 420] [--verbose]
 *
 * Models: `tiny-copies` symlinks of models/stories260K.gguf plus random-weight Q8_0
 * models forged at `sizes` MB under --dir (reused when already there). A calibration run loads
 * every model once with a large budget to measure footprints and a runner's own RSS; the budget
 * is then fraction x sum(footprints) (at least the biggest footprint) + 3 runners' RSS (two
 * resident models + the warm spare), printed before the trace.
 *
 * Part 1: the trace (bursts of 1..max-burst concurrent requests, Zipf popularity over a seeded
 * permutation of the models) for each policy on a fresh placement: swaps ("evicted" events),
 * loads, bytes loaded, summed load time, TTFT p50/p99 (all, swapped, not swapped), failures
 * (must be 0), peak runner RSS vs budget.
 * Part 2: the biggest model, made non-resident by loading others, is requested with its file in
 * page cache and with it dropped from page cache (dd iflag=nocache, else /proc/sys/vm/drop_caches):
 * its load time vs a plain sequential read of the file under the same cache condition (goal:
 * load <= 1.2 x read + 100 ms, issue 10's goal), and the TTFT of that swap vs a request on the resident model.
 * A benchmark prints figures; it asserts nothing.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseConfig } from "../common/config/parse-config.js";
import { forgeModel } from "../forge/forge-model.js";
import { AdminClient, type ResidencyEvent, type StatusResponse } from "../gen/modelswap/v1/admin.js";
import { toWireEvent } from "../services/placement/residency-events.js";
import { InferenceClient, ModelState, type GenerateResponse } from "../gen/modelswap/v1/inference.js";
import type { ModelLoaded } from "../gen/modelswap/v1/runner.js";
import { percentile, median, fmt, table, loadAverage, nonNegativeInt } from "./lib/report.js";
import { seededRandom } from "./simulator/random.js";
import { runBounded } from "./lib/run-bounded.js";
import { dropFromPageCache, readWholeFile as nodeRead, residentInPageCache } from "./lib/page-cache.js";
import { startLocalStack, stopAllStacks, type LocalStack } from "./lib/local-stack.js";
import { callUnary } from "../common/grpc/call-unary.js";

const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TINY_SOURCE = path.resolve(PROJECT_ROOT, "models/stories260K.gguf");
const CONTEXT = 512;
const PROMPT = "Once upon a time";
const MB = 1e6;

const HELP =
  "node dist/bench/swap-trace.js [--sizes 50,80,100,120] [--tiny-copies 2] [--requests 60] [--seed 42] [--zipf 1.0]\n" +
  "  [--max-burst 3] [--max-tokens 8] [--budget-fraction 0.4] [--runners-charged N] [--policies lru,cost] [--swap-rounds 3]\n" +
  "  [--dir /tmp/modelswap-bench] [--time-limit 420] [--verbose] [--events]\n";
const { values: flags } = parseArgs({
  options: {
    sizes: { type: "string", default: "50,80,100,120" },
    "tiny-copies": { type: "string", default: "2" },
    requests: { type: "string", default: "60" },
    seed: { type: "string", default: "42" },
    zipf: { type: "string", default: "1.0" },
    "max-burst": { type: "string", default: "3" },
    "max-tokens": { type: "string", default: "8" },
    "budget-fraction": { type: "string", default: "0.4" },
    policies: { type: "string", default: "lru,cost" },
    "swap-rounds": { type: "string", default: "3" },
    "runners-charged": { type: "string" },
    dir: { type: "string", default: "/tmp/modelswap-bench" },
    "time-limit": { type: "string", default: "420" },
    verbose: { type: "boolean", default: false },
    events: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const SIZES_MB = flags.sizes!.split(",").filter(Boolean).map((part) => positiveNumber(part, "--sizes"));
const TINY_COPIES = nonNegativeInt(flags["tiny-copies"]!, "--tiny-copies");
const REQUESTS = positiveNumber(flags.requests!, "--requests");
const SEED = nonNegativeInt(flags.seed!, "--seed");
const ZIPF_S = positiveNumber(flags.zipf!, "--zipf");
const MAX_BURST = positiveNumber(flags["max-burst"]!, "--max-burst");
const MAX_TOKENS = positiveNumber(flags["max-tokens"]!, "--max-tokens");
const BUDGET_FRACTION = positiveNumber(flags["budget-fraction"]!, "--budget-fraction");
const POLICIES = flags.policies!.split(",").map((policy) => policy.trim()).filter(Boolean);
const SWAP_ROUNDS = positiveNumber(flags["swap-rounds"]!, "--swap-rounds");
const DIR = path.resolve(flags.dir!);
const TIME_LIMIT_S = positiveNumber(flags["time-limit"]!, "--time-limit");
if (!DIR.startsWith("/tmp/")) throw new Error(`--dir must be under /tmp (got ${DIR}); forged models never go into the repository`);

function positiveNumber(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got "${text}")`);
  return value;
}

// ---- small helpers ----------------------------------------------------------------------



const mb = (bytes: number, digits = 1) => fmt(bytes / MB, digits);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));




function rssOf(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]);
    return pages * 4096;
  } catch {
    return 0;
  }
}


// ---- models -------------------------------------------------------------------------------

interface BenchModel {
  name: string;
  path: string;
  fileBytes: number;
}

async function prepareModels(): Promise<BenchModel[]> {
  const models: BenchModel[] = [];
  mkdirSync(DIR, { recursive: true });
  for (let copy = 1; copy <= TINY_COPIES; copy++) {
    const link = path.join(DIR, `tiny-${copy}.gguf`);
    if (!existsSync(link)) {
      try {
        unlinkSync(link);
      } catch {
        // not there
      }
      symlinkSync(TINY_SOURCE, link);
    }
    models.push({ name: `tiny-${copy}`, path: link, fileBytes: statSync(link).size });
  }
  for (const sizeMb of SIZES_MB) {
    const file = path.join(DIR, `forged-${sizeMb}MB-q8_0.gguf`);
    if (!existsSync(file)) {
      const started = performance.now();
      await forgeModel({ sizeBytes: Math.round(sizeMb * MB), outPath: file, weightType: "q8_0", seed: Math.round(sizeMb) });
      console.log(`forged ${file} in ${fmt(performance.now() - started, 0)} ms`);
    }
    models.push({ name: `m${sizeMb}`, path: file, fileBytes: statSync(file).size });
  }
  return models;
}

// ---- the product stack --------------------------------------------------------------------

interface Stack extends LocalStack {
  events: ResidencyEvent[];
  /** The runners' "loaded" reports (load time split into weights, context, warm-up). */
  loads: ModelLoaded[];
}

async function bootStack(models: BenchModel[], budgetBytes: number, policy: string): Promise<Stack> {
  const config = parseConfig(
    {
      listen: "127.0.0.1:0",
      budget: String(Math.round(budgetBytes)),
      placement: { listen: "127.0.0.1:0", eviction: policy, spare_runners: 1, queue_timeout: "60s" },
      defaults: { context: CONTEXT, threads: 1, gpu: "cpu", sequences: 2 },
      models: models.map((model) => ({ name: model.name, path: model.path, sampling: { temperature: 0, repeat_penalty: 1 } })),
    },
    PROJECT_ROOT,
  );
  const events: ResidencyEvent[] = [];
  const loads: ModelLoaded[] = [];
  const local = await startLocalStack(config, {
    verbose: flags.verbose,
    onEvent: (record) => {
      const event = toWireEvent(record);
      events.push(event);
      if (flags.events) {
        const t = new Date(event.timeUnixMs).toISOString().slice(17, 23);
        console.log(`    [${t}] ${event.kind} ${event.model} ${event.reason} ${event.bytes ? mb(event.bytes) + "MB" : ""} q=${event.queueDepth} ${event.runnerId}`);
      }
    },
    onRunnerEvent: (_runnerId, event) => {
      if (event.event?.$case === "loaded") loads.push(event.event.value);
    },
  });
  return { ...local, events, loads };
}

function getStatus(admin: AdminClient): Promise<StatusResponse> {
  return callUnary((done) => admin.getStatus({}, done));
}
function loadModel(admin: AdminClient, model: string): Promise<number> {
  return new Promise((resolve, reject) =>
    admin.loadModel({ model }, new Metadata(), { deadline: new Date(Date.now() + 120_000) }, (error, response) => (error ? reject(error) : resolve(response.loadMs))),
  );
}
function unloadModel(admin: AdminClient, model: string): Promise<void> {
  return new Promise((resolve, reject) => admin.unloadModel({ model }, (error) => (error ? reject(error) : resolve())));
}
async function waitNotResident(admin: AdminClient, model: string, timeoutMs = 30_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    const status = await getStatus(admin);
    const info = status.models.find((entry) => entry.info?.name === model)?.info;
    if (info?.state === ModelState.MODEL_STATE_NOT_LOADED) return true;
    await sleep(50);
  }
  return false;
}

interface RequestResult {
  model: string;
  ok: boolean;
  error: string;
  ttftMs: number;
  loadMs: number;
  queueMs: number;
}

function generate(client: InferenceClient, model: string, maxTokens: number): Promise<RequestResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let ttftMs = Number.NaN;
    let loadMs = 0;
    let queueMs = 0;
    let done = false;
    const call = client.generate(
      { model, prompt: PROMPT, maxTokens, task: "", resumable: false, sampling: { temperature: 0, repeatPenalty: 1, ignoreEos: true, stop: [] } },
      { deadline: new Date(Date.now() + 70_000) },
    );
    call.on("data", (message: GenerateResponse) => {
      const event = message.event;
      if (event?.$case === "token" && Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
      if (event?.$case === "done") {
        done = true;
        loadMs = event.value.timings?.loadMs ?? 0;
        queueMs = event.value.timings?.queueMs ?? 0;
      }
    });
    call.on("error", (error: ServiceError) => resolve({ model, ok: false, error: `${error.code} ${error.details}`, ttftMs, loadMs, queueMs }));
    call.on("end", () => resolve({ model, ok: done, error: done ? "" : "ended without done", ttftMs, loadMs, queueMs }));
  });
}

// ---- calibration ------------------------------------------------------------------------------

interface Calibration {
  footprint: Map<string, number>;
  estimated: Map<string, number>;
  runnerBaseBytes: number;
  runnerReportedBytes: number;
}

async function calibrate(models: BenchModel[]): Promise<Calibration> {
  const stack = await bootStack(models, 16 * 1024 ** 3, "lru");
  try {
    for (const model of models) await loadModel(stack.admin, model.name);
    const status = await getStatus(stack.admin);
    const footprint = new Map<string, number>();
    const estimated = new Map<string, number>();
    for (const entry of status.models) {
      const info = entry.info!;
      footprint.set(info.name, info.measuredBytes || info.estimatedBytes);
      estimated.set(info.name, info.estimatedBytes);
    }
    // A runner's own RSS: the spare (no model), else the smallest runner's RSS minus its model.
    let spares = status.runners.filter((runner) => runner.state === "spare" && runner.rssBytes > 0);
    for (let i = 0; i < 60 && spares.length === 0; i++) {
      await sleep(250);
      spares = (await getStatus(stack.admin)).runners.filter((runner) => runner.state === "spare" && runner.rssBytes > 0);
    }
    const runnerBaseBytes = spares.length > 0
      ? Math.max(...spares.map((runner) => rssOf(runner.pid) || runner.rssBytes))
      : Math.min(...status.runners.filter((r) => r.model).map((r) => r.rssBytes - (footprint.get(r.model) ?? 0)));
    const runnerReportedBytes = spares.length > 0 ? Math.max(...spares.map((runner) => runner.rssBytes)) : Number.NaN;
    return { footprint, estimated, runnerBaseBytes, runnerReportedBytes };
  } finally {
    await stack.stop();
  }
}

// ---- the trace ---------------------------------------------------------------------------------

interface TraceRequest {
  model: string;
  maxTokens: number;
}

function makeTrace(models: BenchModel[]): TraceRequest[][] {
  const random = seededRandom(SEED);
  // popularity order: a seeded permutation, so popularity is not tied to size
  const order = [...models];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const weights = order.map((_, rank) => 1 / (rank + 1) ** ZIPF_S);
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const pick = () => {
    let x = random() * total;
    for (let i = 0; i < order.length; i++) {
      x -= weights[i]!;
      if (x <= 0) return order[i]!.name;
    }
    return order[order.length - 1]!.name;
  };
  const bursts: TraceRequest[][] = [];
  let count = 0;
  while (count < REQUESTS) {
    const size = Math.min(REQUESTS - count, 1 + Math.floor(random() * MAX_BURST));
    const burst: TraceRequest[] = [];
    for (let i = 0; i < size; i++) burst.push({ model: pick(), maxTokens: 1 + Math.floor(random() * MAX_TOKENS) });
    bursts.push(burst);
    count += size;
  }
  return bursts;
}

interface PolicyResult {
  policy: string;
  results: RequestResult[];
  evicted: number;
  evictionsStatus: number;
  loads: number;
  bytesLoaded: number;
  loadMsTotal: number;
  wallMs: number;
  peakRunnerRss: number;
  peakRunnerRssAt: string;
}

/** What the trace has done so far, printed if the time limit cuts it short. */
const progress = { policy: "", done: 0, failed: 0, lastFailure: "" };

async function replay(models: BenchModel[], budgetBytes: number, policy: string, bursts: TraceRequest[][]): Promise<PolicyResult> {
  const stack = await bootStack(models, budgetBytes, policy);
  const fileBytes = new Map(models.map((model) => [model.name, model.fileBytes]));
  let peakRunnerRss = 0;
  let peakRunnerRssAt = "";
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        const status = await getStatus(stack.admin);
        const rss = status.runners.reduce((sum, runner) => sum + rssOf(runner.pid), 0);
        if (rss > peakRunnerRss) {
          peakRunnerRss = rss;
          peakRunnerRssAt = status.runners.map((runner) => `${runner.model || runner.state}:${mb(rssOf(runner.pid), 0)}`).join(" ");
        }
      } catch {
        // stack stopping
      }
      await sleep(200);
    }
  })();
  try {
    // let the spare runner come up so every policy starts from the same state
    for (let i = 0; i < 40; i++) {
      if ((await getStatus(stack.admin)).runners.some((runner) => runner.state === "spare")) break;
      await sleep(100);
    }
    const results: RequestResult[] = [];
    const started = performance.now();
    Object.assign(progress, { policy, done: 0, failed: 0, lastFailure: "" });
    for (const burst of bursts) {
      const answers = await Promise.all(burst.map((request) => generate(stack.inference, request.model, request.maxTokens)));
      results.push(...answers);
      progress.done += answers.length;
      for (const answer of answers.filter((a) => !a.ok)) {
        progress.failed++;
        progress.lastFailure = `${answer.model}: ${answer.error}`;
      }
    }
    const wallMs = performance.now() - started;
    const status = await getStatus(stack.admin);
    const loaded = stack.events.filter((event) => event.kind === "loaded");
    return {
      policy,
      results,
      evicted: stack.events.filter((event) => event.kind === "evicted").length,
      evictionsStatus: status.models.reduce((sum, entry) => sum + entry.evictions, 0),
      loads: loaded.length,
      bytesLoaded: loaded.reduce((sum, event) => sum + (fileBytes.get(event.model) ?? 0), 0),
      loadMsTotal: loaded.reduce((sum, event) => sum + (Number.parseFloat(event.reason) || 0), 0),
      wallMs,
      peakRunnerRss,
      peakRunnerRssAt,
    };
  } finally {
    sampling = false;
    await sampler;
    await stack.stop();
  }
}

function catRead(file: string): number {
  const started = performance.now();
  spawnSync("sh", ["-c", 'cat "$1" > /dev/null', "sh", file], { stdio: "ignore" });
  return performance.now() - started;
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`swap-trace: seed ${SEED}, ${REQUESTS} requests, zipf s=${ZIPF_S}, bursts of 1..${MAX_BURST}, max_tokens 1..${MAX_TOKENS}, context ${CONTEXT}, threads 1`);
  console.log(`  load average at start: ${loadAverage()}\n`);
  const models = await prepareModels();

  const calibrationStarted = performance.now();
  const calibration = await calibrate(models);
  const footprints = models.map((model) => calibration.footprint.get(model.name) ?? model.fileBytes);
  const totalFootprint = footprints.reduce((sum, bytes) => sum + bytes, 0);
  const totalFile = models.reduce((sum, model) => sum + model.fileBytes, 0);
  const modelBytes = Math.max(BUDGET_FRACTION * totalFootprint, Math.max(...footprints) * 1.05);
  // Every runner process (resident or spare) is charged its own RSS; placement does not stop a
  // runner to make room, so charge one per model that can be co-resident, plus the warm spare.
  const sortedFootprints = [...footprints].sort((a, b) => a - b);
  let coResident = 0;
  for (let sum = 0; coResident < sortedFootprints.length && sum + sortedFootprints[coResident]! <= modelBytes; coResident++) sum += sortedFootprints[coResident]!;
  const runnersCharged = flags["runners-charged"] === undefined ? coResident + 1 : nonNegativeInt(flags["runners-charged"], "--runners-charged");
  const budgetBytes = Math.ceil(modelBytes + runnersCharged * calibration.runnerBaseBytes);
  console.log(`models (calibrated in ${fmt(performance.now() - calibrationStarted, 0)} ms: each loaded once with a 16 GiB budget)`);
  console.log(
    table(
      ["model", "file MB", "estimated MB", "measured MB", "est/measured"],
      models.map((model) => {
        const estimated = calibration.estimated.get(model.name) ?? 0;
        const measured = calibration.footprint.get(model.name) ?? 0;
        return [model.name, mb(model.fileBytes), mb(estimated), mb(measured), fmt(estimated / measured, 2)];
      }),
    ),
  );
  console.log(
    `budget: ${mb(budgetBytes)} MB = max(${BUDGET_FRACTION} x ${mb(totalFootprint)} MB footprints, 1.05 x biggest) ${mb(modelBytes)} MB` +
      ` + ${runnersCharged} runners x ${mb(calibration.runnerBaseBytes)} MB own RSS (/proc of a spare runner; it reports ${mb(calibration.runnerReportedBytes)} MB itself)` +
      ` — ${runnersCharged} = ${flags["runners-charged"] === undefined ? `${coResident} co-resident models at most + 1 spare` : "--runners-charged"}`,
  );
  console.log(`  (file bytes total ${mb(totalFile)} MB; the model part of the budget holds ${fmt((100 * modelBytes) / totalFootprint, 0)}% of all footprints)\n`);

  // Part 1: the trace under each policy
  const bursts = makeTrace(models);
  const counts = new Map<string, number>();
  for (const burst of bursts) for (const request of burst) counts.set(request.model, (counts.get(request.model) ?? 0) + 1);
  console.log(`trace: ${bursts.length} bursts; requests per model: ${models.map((model) => `${model.name} ${counts.get(model.name) ?? 0}`).join(", ")}`);
  const policyResults: PolicyResult[] = [];
  for (const policy of POLICIES) {
    const result = await replay(models, budgetBytes, policy, bursts);
    policyResults.push(result);
    console.log(`  ${policy}: done in ${fmt(result.wallMs / 1000, 1)} s`);
  }
  const rows: (string | number)[][] = [];
  const metric = (name: string, pick: (result: PolicyResult) => string) => rows.push([name, ...policyResults.map(pick)]);
  const ok = (result: PolicyResult) => result.results.filter((request) => request.ok);
  const swapped = (result: PolicyResult) => ok(result).filter((request) => request.loadMs > 0);
  const warm = (result: PolicyResult) => ok(result).filter((request) => request.loadMs === 0);
  metric("swaps (evicted events)", (r) => `${r.evicted}`);
  metric("evictions (GetStatus sum)", (r) => `${r.evictionsStatus}`);
  metric("loads", (r) => `${r.loads}`);
  metric("bytes loaded (file MB)", (r) => mb(r.bytesLoaded));
  metric("load time summed (s)", (r) => fmt(r.loadMsTotal / 1000, 2));
  metric("TTFT p50 all (ms)", (r) => fmt(median(ok(r).map((q) => q.ttftMs))));
  metric("TTFT p99 all (ms)", (r) => fmt(percentile(ok(r).map((q) => q.ttftMs), 99)));
  metric("requests that waited for a load", (r) => `${swapped(r).length}`);
  metric("TTFT p50 waited for load (ms)", (r) => fmt(median(swapped(r).map((q) => q.ttftMs))));
  metric("TTFT p50 resident (ms)", (r) => fmt(median(warm(r).map((q) => q.ttftMs))));
  metric("failed requests (must be 0)", (r) => `${r.results.length - ok(r).length}`);
  metric("trace wall time (s)", (r) => fmt(r.wallMs / 1000, 1));
  metric("peak runner RSS / budget", (r) => `${mb(r.peakRunnerRss)} / ${mb(budgetBytes)} MB (${fmt((100 * r.peakRunnerRss) / budgetBytes, 0)}%)`);
  console.log(`\nPart 1: the same trace per policy, fresh placement each, page cache warm`);
  console.log(table(["", ...policyResults.map((result) => result.policy)], rows));
  const lru = policyResults.find((result) => result.policy === "lru");
  const cost = policyResults.find((result) => result.policy === "cost");
  if (lru && cost) {
    console.log(
      `cost/lru: swaps ${fmt(cost.evicted / lru.evicted, 2)}, bytes loaded ${fmt(cost.bytesLoaded / lru.bytesLoaded, 2)}, ` +
        `load time ${fmt(cost.loadMsTotal / lru.loadMsTotal, 2)} (goal: cost's swap cost <= 0.8 x LRU's)`,
    );
  }
  for (const result of policyResults) {
    const failures = result.results.filter((request) => !request.ok);
    if (failures.length > 0) console.log(`  ${result.policy} failures: ${failures.slice(0, 5).map((f) => `${f.model}: ${f.error}`).join("; ")}`);
    console.log(`  ${result.policy} peak RSS at: ${result.peakRunnerRssAt}`);
  }

  // Part 2: one swap of the biggest model, page cache vs disk
  const biggest = models.reduce((a, b) => (b.fileBytes > a.fileBytes ? b : a));
  const others = models.filter((model) => model !== biggest).sort((a, b) => b.fileBytes - a.fileBytes);
  const stack = await bootStack(models, budgetBytes, POLICIES[0] ?? "lru");
  const rounds: {
    condition: "page cache" | "disk";
    pageCacheBefore: number | undefined;
    swap: RequestResult;
    resident: RequestResult;
    readMs: number;
    catMs: number;
    report: ModelLoaded | undefined;
  }[] = [];
  let dropMethod: string | undefined = "not tried";
  let dropFailed = false;
  try {
    await loadModel(stack.admin, biggest.name); // first load in this placement (learns the runner)
    for (let round = 0; round < SWAP_ROUNDS; round++) {
      for (const condition of ["page cache", "disk"] as const) {
        if (condition === "disk" && dropFailed) continue;
        // make the biggest model non-resident the way traffic does: load others until it is evicted
        for (const other of others) {
          const status = await getStatus(stack.admin);
          if (status.models.find((entry) => entry.info?.name === biggest.name)?.info?.state === ModelState.MODEL_STATE_NOT_LOADED) break;
          await loadModel(stack.admin, other.name);
        }
        if (!(await waitNotResident(stack.admin, biggest.name, 1000))) {
          await unloadModel(stack.admin, biggest.name);
          await waitNotResident(stack.admin, biggest.name);
        }
        await sleep(200); // let the unloading runner settle
        if (condition === "disk") {
          dropMethod = dropFromPageCache(biggest.path);
          if (!dropMethod) {
            dropFailed = true;
            continue;
          }
        } else {
          await nodeRead(biggest.path); // make sure it is in page cache
        }
        const pageCacheBefore = residentInPageCache(biggest.path);
        const loadsBefore = stack.loads.length;
        const swap = await generate(stack.inference, biggest.name, 1);
        const report = stack.loads.slice(loadsBefore).find((loaded) => loaded.model === biggest.name);
        const resident = await generate(stack.inference, biggest.name, 1);
        // a plain sequential read under the same cache condition
        if (condition === "disk") dropFromPageCache(biggest.path);
        const readMs = await nodeRead(biggest.path);
        if (condition === "disk") dropFromPageCache(biggest.path);
        const catMs = catRead(biggest.path);
        rounds.push({ condition, pageCacheBefore, swap, resident, readMs, catMs, report });
      }
    }
  } finally {
    await stack.stop();
  }
  console.log(`\nPart 2: one swap of the biggest model (${biggest.name}, ${mb(biggest.fileBytes)} MB file), ${SWAP_ROUNDS} rounds, medians`);
  console.log(`  evicting from page cache: ${dropMethod ?? "neither dd iflag=nocache nor /proc/sys/vm/drop_caches worked; disk figures omitted"}`);
  const rows2: (string | number)[][] = [];
  for (const condition of ["page cache", "disk"] as const) {
    const mine = rounds.filter((round) => round.condition === condition);
    if (mine.length === 0) continue;
    const loadMs = median(mine.map((round) => round.swap.loadMs));
    const readMs = median(mine.map((round) => round.readMs));
    const goalMs = 1.2 * readMs + 100;
    rows2.push([
      condition,
      mine.map((round) => (round.pageCacheBefore === undefined ? "?" : mb(round.pageCacheBefore, 0))).join("/"),
      fmt(loadMs, 0),
      ["modelLoadMs", "contextMs", "warmUpMs"].map((key) => fmt(median(mine.map((round) => (round.report ? Number(round.report[key as keyof ModelLoaded]) : Number.NaN))), 0)).join("/"),
      fmt(readMs, 1),
      fmt(median(mine.map((round) => round.catMs)), 1),
      fmt((biggest.fileBytes / MB) / (readMs / 1000), 0),
      fmt(goalMs, 0),
      fmt(loadMs / goalMs, 2),
      fmt(median(mine.map((round) => round.swap.ttftMs)), 0),
      fmt(median(mine.map((round) => round.resident.ttftMs)), 1),
      `${mine.filter((round) => !round.swap.ok || !round.resident.ok).length}`,
    ]);
  }
  console.log(
    table(
      ["file in", "cached MB before", "load ms (swap)", "runner: weights/ctx/warm-up ms", "read ms (node)", "cat ms", "read MB/s", "goal ms (1.2xread+100)", "load/goal", "TTFT swap ms", "TTFT resident ms", "failed"],
      rows2,
    ),
  );
  console.log(`  load ms = Done.timings.load_ms of the request that needed the swap; TTFT = client call to first token (includes eviction wait, load, first token)`);
  console.log(`\nload average at end: ${loadAverage()}`);
}

runBounded(main, {
  timeLimitS: TIME_LIMIT_S,
  cleanup: stopAllStacks,
  onTimeout: () => {
    if (progress.policy) {
      console.error(`  trace under ${progress.policy}: ${progress.done}/${REQUESTS} requests answered, ${progress.failed} failed${progress.lastFailure ? ` (last: ${progress.lastFailure})` : ""}`);
    }
  },
});
