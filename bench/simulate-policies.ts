// Evaluates the eviction policies on seeded Zipf/bursty traces against Belady-Size and
// the exact offline optimum. Prints figures; asserts nothing.
//   node dist/bench/simulate-policies.js [--models 8] [--requests 2000] [--seed 1]
//     [--budget-fraction 0.4] [--seeds 1] [--zipf 1] [--burst 3] [--gap-shape 0.4]
//     [--fixed-ms 150] [--disk-mb-per-s 1400]
import { parseArgs } from "node:util";
import { type LoadCostModel, loadCostMs } from "./simulator/load-cost.js";
import { beladySize, maxModelsForExactOptimum, optimalSwapCost } from "./simulator/offline.js";
import { type SimulationResult, servableTrace, simulate } from "./simulator/simulate.js";
import { defaultTraceOptions, syntheticTrace, type Trace } from "./simulator/trace.js";
import { cost } from "../services/placement/policies/gdsf.js";
import { lru } from "../services/placement/policies/lru.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: "8" },
    requests: { type: "string", default: "2000" },
    seed: { type: "string", default: "1" },
    seeds: { type: "string", default: "1" },
    "budget-fraction": { type: "string", default: "0.4" },
    zipf: { type: "string", default: String(defaultTraceOptions.zipfS) },
    burst: { type: "string", default: String(defaultTraceOptions.meanBurstLength) },
    "gap-shape": { type: "string", default: String(defaultTraceOptions.gapShape) },
    "fixed-ms": { type: "string", default: "150" },
    "disk-mb-per-s": { type: "string", default: "1400" },
  },
});

const number = (name: keyof typeof values): number => {
  const parsed = Number(values[name]);
  if (!Number.isFinite(parsed)) throw new Error(`--${name} must be a number, got ${values[name]}`);
  return parsed;
};

const firstSeed = number("seed");
const seedCount = Math.max(1, Math.floor(number("seeds")));
const budgetFraction = number("budget-fraction");
const load: LoadCostModel = { fixedMs: number("fixed-ms"), diskBytesPerMs: (number("disk-mb-per-s") * 1e6) / 1000 };
const traceOptions = {
  ...defaultTraceOptions,
  models: Math.floor(number("models")),
  requests: Math.floor(number("requests")),
  zipfS: number("zipf"),
  meanBurstLength: number("burst"),
  gapShape: number("gap-shape"),
};

console.log(
  `trace: ${traceOptions.models} models (${fmtBytes(traceOptions.minBytes)}–${fmtBytes(traceOptions.maxBytes)} log-uniform), ` +
    `${traceOptions.requests} requests, Zipf s=${traceOptions.zipfS}, mean burst ${traceOptions.meanBurstLength}, ` +
    `Gamma gap shape ${traceOptions.gapShape}; budget ${budgetFraction} × total model bytes; ` +
    `load = ${load.fixedMs} ms + bytes ÷ ${number("disk-mb-per-s")} MB/s`,
);

const totals = new Map<string, SimulationResult>();
/** Seeds meeting DESIGN's goals (cost ≤ 1.10× optimum, ≤ 0.8× lru), and where the optimum itself is ≤ 0.8× lru. */
const goals = { seeds: 0, costWithinOptimum: 0, costBelowLru: 0, optimumBelowLru: 0 };
const ratioRanges = new Map<string, { min: number; max: number }>();

for (let seed = firstSeed; seed < firstSeed + seedCount; seed++) {
  const fullTrace = syntheticTrace({ ...traceOptions, seed });
  const budgetBytes = Math.floor(budgetFraction * fullTrace.models.reduce((sum, m) => sum + m.bytes, 0));
  const { trace, refusedRequests } = servableTrace(fullTrace, budgetBytes);
  const results = evaluate(trace, budgetBytes);
  const optimum = results.find((r) => r.policy === "optimum");
  const lruResult = results.find((r) => r.policy === "lru")!;

  const costResult = results.find((r) => r.policy === "cost")!;
  if (optimum !== undefined) {
    goals.seeds += 1;
    if (costResult.swapCostMs <= 1.1 * optimum.swapCostMs) goals.costWithinOptimum += 1;
    if (optimum.swapCostMs <= 0.8 * lruResult.swapCostMs) goals.optimumBelowLru += 1;
  }
  if (costResult.swapCostMs <= 0.8 * lruResult.swapCostMs) goals.costBelowLru += 1;

  if (seedCount === 1) {
    console.log(
      `seed ${seed}: budget ${fmtBytes(budgetBytes)}; models ${fullTrace.models.map((m) => `${m.name} ${fmtBytes(m.bytes)}`).join(", ")}`,
    );
    console.log(
      `refused (larger than budget): ${refusedRequests} requests; compulsory (first-load) cost ${fmtMs(compulsoryCostMs(trace, load))}`,
    );
    printTable(results, optimum, lruResult);
  } else {
    const line = results
      .filter((r) => r.policy !== "optimum")
      .map((r) => `${r.policy} ${optimum ? ratio(r, optimum) : "n/a"}×opt ${ratio(r, lruResult)}×lru`)
      .join("  ");
    console.log(`seed ${seed} (refused ${refusedRequests}): ${line}`);
  }
  for (const r of results) {
    const total = totals.get(r.policy) ?? { policy: r.policy, swaps: 0, bytesLoaded: 0, swapCostMs: 0, evictions: 0 };
    total.swaps += r.swaps;
    total.bytesLoaded += r.bytesLoaded;
    total.swapCostMs += r.swapCostMs;
    total.evictions += r.evictions;
    totals.set(r.policy, total);
    if (optimum !== undefined) {
      const value = r.swapCostMs / optimum.swapCostMs;
      const range = ratioRanges.get(r.policy) ?? { min: Infinity, max: -Infinity };
      ratioRanges.set(r.policy, { min: Math.min(range.min, value), max: Math.max(range.max, value) });
    }
  }
}

if (seedCount > 1) {
  const all = [...totals.values()];
  console.log(`\nsummed over seeds ${firstSeed}..${firstSeed + seedCount - 1}:`);
  printTable(all, totals.get("optimum"), totals.get("lru")!);
  for (const [policy, range] of ratioRanges) {
    if (policy !== "optimum") console.log(`${policy}: per-seed cost ÷ optimum from ${range.min.toFixed(3)} to ${range.max.toFixed(3)}`);
  }
}
console.log(
  `goals (DESIGN): cost ≤ 1.10× optimum in ${goals.costWithinOptimum} of ${goals.seeds} seeds; ` +
    `cost ≤ 0.8× lru in ${goals.costBelowLru} of ${seedCount} seeds; ` +
    `the offline optimum itself is ≤ 0.8× lru in ${goals.optimumBelowLru} of ${goals.seeds} seeds`,
);

function evaluate(trace: Trace, budgetBytes: number): SimulationResult[] {
  const options = { budgetBytes, load, minResidencyMs: 0 };
  const results = [simulate(trace, lru, options), simulate(trace, cost, options), simulate(trace, beladySize(trace), options)];
  if (trace.models.length <= maxModelsForExactOptimum) results.push(optimalSwapCost(trace, budgetBytes, load));
  return results;
}

function compulsoryCostMs(trace: Trace, model: LoadCostModel): number {
  const requested = new Set(trace.requests.map((r) => r.model));
  return trace.models.filter((m) => requested.has(m.name)).reduce((sum, m) => sum + loadCostMs(m.bytes, model), 0);
}

function printTable(results: readonly SimulationResult[], optimum: SimulationResult | undefined, lruResult: SimulationResult): void {
  const rows = [
    ["policy", "swaps", "bytes loaded", "swap cost", "cost ÷ optimum", "cost ÷ lru"],
    ...results.map((r) => [
      r.policy,
      String(r.swaps),
      fmtBytes(r.bytesLoaded),
      fmtMs(r.swapCostMs),
      optimum ? ratio(r, optimum) : "n/a",
      ratio(r, lruResult),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) {
    const cells = row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)));
    console.log(cells.join("  "));
  }
}

function ratio(result: SimulationResult, reference: SimulationResult): string {
  return (result.swapCostMs / reference.swapCostMs).toFixed(3);
}

function fmtBytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(0)} MB`;
}

function fmtMs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`;
}
