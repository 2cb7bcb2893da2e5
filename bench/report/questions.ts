import { fmt, median, percentile } from "../lib/report.js";
import { PLAN_BUDGET_BYTES } from "./box.js";
import { distribution, groupedBars, heatmap, labelledPoints, lines, residencyAndMemory, scatterWithRates, stackedBars, timelineWithInterval, type ChartSpec } from "./chart-specs.js";
import type { ReportData } from "./run-plan.js";
import { mean } from "./streams.js";
import type { MixMeasurement } from "./tests/max-small-models.js";
import { seededRandom } from "../simulator/random.js";

/**
 * The research plan's ten questions answered from one run's raw figures: for each, one
 * sentence, the figures behind it, the plan's guess beside the measurement, and plots. Pure:
 * the same data gives the same sections.
 */

export interface Chart {
  title: string;
  spec: ChartSpec;
}

export interface Section {
  number: number;
  question: string;
  /** The plan's tests the answer comes from. */
  tests: string;
  answerable: boolean;
  /** One sentence: the answer, or why it cannot be answered on this machine. */
  answer: string;
  /** The figures behind the answer, measured in this run. */
  figures: { label: string; value: string }[];
  guess: { plan: string; measured: string };
  charts: Chart[];
  notes: string[];
}

const MB = 1e6;
const mb = (bytes: number, digits = 0) => `${fmt(bytes / MB, digits)} MB`;
const ms = (value: number) => (value >= 10_000 ? `${fmt(value / 1000, 1)} s` : `${fmt(value, 0)} ms`);
const pct = (part: number, whole: number) => `${fmt((100 * part) / whole, 0)}%`;
const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;
const paramsLabel = (paramsB: number) => (paramsB >= 0.1 ? `${fmt(paramsB, paramsB < 1 ? 2 : 1).replace(/\.?0+$/, "")}B` : `${fmt(paramsB * 1e3, 2).replace(/\.?0+$/, "")}M`);

export function buildSections(data: ReportData): Section[] {
  return [q1(data), q2(data), q3(data), q4(data), q5(data), q6(data), q7(data), q8(data), q9(data), q10(data)];
}

/** "at this scale (x0.2)" and the factor's meaning, for answers. */
const scaleNote = (data: ReportData) =>
  data.scale.factor === 1 ? "" : ` at scale ${data.scale.factor} (the plan's sizes, budget and contexts x ${data.scale.factor})`;

function q1(data: ReportData): Section {
  const result = data.maxSmall;
  const f = data.scale.factor;
  const perModel = mean(result.smallMeasuredBytes);
  const perFile = mean(result.smallFileBytes);
  const runners = data.scenarios[0]!.runners;
  const projected = Math.floor((PLAN_BUDGET_BYTES - runners * result.runnerBaseBytes) / (perModel / f));
  const limit = result.firstEviction ? `the next load evicted one (${result.firstEviction})` : `no load evicted one, so the limit is at least that`;
  const streams = result.fiveSmallMix;
  return {
    number: 1,
    question: "How many 0.5B models run concurrently?",
    tests: "Test 1 (phase A): maximum small models — the five-small scenario, then copies of its 0.5B model until placement evicts one",
    answerable: true,
    answer:
      `${result.maxResidentSmall} models of the 0.5B class were resident at once in the ${mb(result.budgetBytes)} budget${scaleNote(data)}, ` +
      `${mb(perModel, 1)} each (${fmt(perModel / perFile, 2)}x the file); ${limit}.`,
    figures: [
      { label: "0.5B-class models resident at once", value: `${result.maxResidentSmall} (all models: ${result.maxResident})` },
      { label: "footprint per 0.5B model (measured by its runner)", value: `${mb(perModel, 1)} for a ${mb(perFile, 1)} file` },
      { label: "a runner's own memory (no model)", value: mb(result.runnerBaseBytes) },
      { label: "budget", value: `${mb(result.budgetBytes)} = ${f} x 5 GiB${f < 1 ? ` + ${fmt(1 - f, 2)} x ${runners} runners x ${mb(data.runnerAllowanceBytes)}` : ""}` },
      { label: "the five scenario models streaming at once", value: `${streams.streamsOk}/${streams.streams} streams ok, ${fmt(streams.aggregateTokPerS, 0)} tok/s together, TTFT p50 ${ms(streams.ttftMsMedian)}` },
      ...(f < 1 ? [{ label: "projection to the plan's 5 GiB if footprints grow with the factor (runners as measured; KV cache and buffers need not)", value: `${projected} models` }] : []),
    ],
    guess: {
      plan: `5 x 0.5B at 0.9 GB each (4.5 of 5 GB; 1.7x a 530 MB file)${f < 1 ? ` — at this scale 0.9 GB x ${f} = ${mb(0.9e9 * f)} each` : ""}`,
      measured: `${result.maxResidentSmall} at ${mb(perModel, 1)} each (${fmt(perModel / perFile, 2)}x the file)`,
    },
    charts: [
      {
        title: "Memory as models are loaded one by one (five-small scenario, then copies of its 0.5B model)",
        spec: lines(
          result.steps.flatMap((step, index) => [
            { step: `${index + 1}. ${step.model}`, series: "charged by placement", mb: step.chargedBytes / MB },
            { step: `${index + 1}. ${step.model}`, series: "runner processes' RSS", mb: step.runnersRssBytes / MB },
          ]),
          {
            x: "step",
            xTitle: "model loaded",
            xType: "ordinal",
            xSort: result.steps.map((step, index) => `${index + 1}. ${step.model}`),
            y: "mb",
            yTitle: "MB",
            series: "series",
            rule: { y: result.budgetBytes / MB, label: `budget ${mb(result.budgetBytes)}` },
          },
        ),
      },
    ],
    notes: [
      "Charged = every runner's own memory + the measured footprint of each model it holds (weights, KV cache for the configured context, compute buffers). RSS is read from /proc.",
      ...(f < 1 ? [`A runner's own ~${mb(result.runnerBaseBytes)} does not shrink with the models, so at this scale it weighs ${fmt(1 / f, 0)}x more against the models than on the plan's box.`] : []),
    ],
  };
}

function mixRow(name: string, mix: MixMeasurement) {
  const largest = Math.max(...mix.models.map((model) => model.paramsB).filter(Number.isFinite));
  const params = mix.models.reduce((sum, model) => sum + (Number.isFinite(model.paramsB) ? model.paramsB : 0), 0);
  return { name, charged: mix.chargedBytes, rss: mix.memory.rssBytes, tokPerS: mix.aggregateTokPerS, ttft: mix.ttftMsMedian, largest, params, ok: mix.streamsOk, streams: mix.streams };
}

function q2(data: ReportData): Section {
  const f = data.scale.factor;
  const five = mixRow("5 small", data.maxSmall.fiveSmallMix);
  const mixed = mixRow("1 large + 2 small", data.largeMix);
  const budget = data.maxSmall.fiveSmallMix.budgetBytes;
  const mixedBudget = data.largeMix.budgetBytes;
  const guesses = { "5 small": 4.5e9 * f, "1 large + 2 small": 4.7e9 * f };
  const faster = five.tokPerS >= mixed.tokPerS ? five : mixed;
  const slower = faster === five ? mixed : five;
  return {
    number: 2,
    question: "What is the best mix of model sizes?",
    tests: "Test 2 (phase A): mixed portfolio — the five-small and one-large-two-small scenarios, every model loaded and streaming at once",
    answerable: true,
    answer:
      `Both mixes fit${scaleNote(data)}: 1 large + 2 small is charged ${mb(mixed.charged)} (${pct(mixed.charged, mixedBudget)} of its budget) and keeps a ${paramsLabel(mixed.largest)} model resident, ` +
      `5 small are charged ${mb(five.charged)} (${pct(five.charged, budget)}) with at most ${paramsLabel(five.largest)} per model; ` +
      `${faster.name} gives ${fmt(faster.tokPerS / slower.tokPerS, 1)}x the aggregate tokens/s (${fmt(faster.tokPerS, 0)} vs ${fmt(slower.tokPerS, 0)}), so it is the mix for many light requests and the other for requests that need the larger model.`,
    figures: [five, mixed].map((row) => ({
      label: row.name,
      value: `charged ${mb(row.charged)} (RSS ${mb(row.rss)}), ${fmt(row.params, 2)}B parameters resident, ${row.ok}/${row.streams} streams at once: ${fmt(row.tokPerS, 0)} tok/s, TTFT p50 ${ms(row.ttft)}`,
    })),
    guess: {
      plan: `1 x 3B + 2 x 0.5B = 4.7 GB; 5 x 0.5B = 4.5 GB${f < 1 ? ` (x ${f}: ${mb(guesses["1 large + 2 small"])} and ${mb(guesses["5 small"])})` : ""}`,
      measured: `${mb(mixed.charged)} and ${mb(five.charged)} charged (runners included)`,
    },
    charts: [
      {
        title: "The two mixes: memory (measured vs the plan's guess) and tokens/s with every model streaming",
        spec: {
          hconcat: [
            groupedBars(
              [five, mixed].flatMap((row) => [
                { mix: row.name, what: "charged (measured)", mb: row.charged / MB },
                { mix: row.name, what: "runners' RSS (measured)", mb: row.rss / MB },
                { mix: row.name, what: `plan's guess x ${f}`, mb: guesses[row.name as keyof typeof guesses] / MB },
              ]),
              { x: "mix", xTitle: null, y: "mb", yTitle: "MB", group: "what" },
            ),
            groupedBars(
              [five, mixed].map((row) => ({ mix: row.name, what: "aggregate tok/s", tokps: row.tokPerS })),
              { x: "mix", xTitle: null, y: "tokps", yTitle: "tokens/s, all streams together", group: "what", width: 160 },
            ),
          ],
          resolve: { scale: { color: "independent" } },
        },
      },
    ],
    notes: ["Random-weight models cannot show what the larger model is better at; parameters resident stand in for capability (question 7)."],
  };
}

function q3(data: ReportData): Section {
  const swap = data.largeSwap;
  const f = data.scale.factor;
  const ins = (model: string, source: string) => swap.swapIns.filter((entry) => entry.model === model && entry.source === source);
  const largeFile = swap.swapIns.find((entry) => entry.model === swap.large)?.fileBytes ?? Number.NaN;
  const fromDisk = median(ins(swap.large, "disk").map((entry) => entry.loadMs));
  const fromCache = median(ins(swap.large, "page cache").map((entry) => entry.loadMs));
  const ttftDisk = median(ins(swap.large, "disk").map((entry) => entry.ttftMs));
  const outs = data.swapOuts.filter((out) => out.model === swap.large);
  const swapOut = median(outs.map((out) => out.ms));
  // what a user waits: the swapping request's time to first token (eviction, load, and the page
  // faults of a mapped model's first token); the runner's load alone where no TTFT was seen
  const ttftCache = median(ins(swap.large, "page cache").map((entry) => entry.ttftMs));
  const swapInMs = Number.isFinite(ttftDisk) ? ttftDisk : Number.isFinite(fromDisk) ? fromDisk : Number.isFinite(ttftCache) ? ttftCache : fromCache;
  const rate = largeFile / MB / (swapInMs / 1000);
  const planBytes = data.scenarios[2]!.models.find((model) => model.name === swap.large)?.planBytes ?? 4.3e9;
  const fullSeconds = planBytes / MB / rate;
  const source = Number.isFinite(fromDisk) ? "from disk" : "from page cache (dropping files from page cache was not possible here)";
  const points = [
    ...swap.swapIns.map((entry) => ({ file: entry.fileBytes / MB, load: entry.loadMs, what: `test 4, ${entry.source}` })),
    ...data.loads.map((load) => ({ file: load.fileBytes / MB, load: load.loadMs, what: "other loads in this run" })),
  ];
  const xMax = Math.max(...points.map((point) => point.file)) * 1.05;
  const rates = [{ label: `plain read from page cache (${fmt(swap.pageCacheReadMBps, 0)} MB/s)`, perMs: swap.pageCacheReadMBps / 1000 }];
  if (Number.isFinite(swap.diskReadMBps)) rates.unshift({ label: `plain read from disk (${fmt(swap.diskReadMBps, 0)} MB/s)`, perMs: swap.diskReadMBps / 1000 });
  rates.push({ label: "the plan's guess (4.3 GB in 30 s)", perMs: 4.3e9 / MB / 30_000 });
  return {
    number: 3,
    question: "How fast is a swap from NVMe?",
    tests: "Test 4 (phase B): large-model swap-in — the large-hot-swap scenario, each request swapping the other model out, files in page cache and dropped from it",
    answerable: true,
    answer:
      `The ${mb(largeFile)} large model${scaleNote(data)} swapped in ${source} in ${ms(swapInMs)} to its first token (${fmt(rate, 0)} MB/s; the runner's load ${ms(Number.isFinite(fromDisk) ? fromDisk : fromCache)}; ` +
      `the plain read of its file: ${fmt(swap.diskReadMBps, 0)} MB/s from disk) and out in ${ms(swapOut)}; at that rate the plan's ${fmt(planBytes / 1e9, 1)} GB model would swap in in about ${fmt(fullSeconds, 1)} s.`,
    figures: [
      { label: `swap-in of ${swap.large} (${mb(largeFile)}), runner load, median`, value: `from disk ${ms(fromDisk)}, from page cache ${ms(fromCache)}` },
      { label: "TTFT of the request that swapped it in, median", value: `from disk ${ms(ttftDisk)}, from page cache ${ms(ttftCache)}` },
      { label: `swap-out of ${swap.large} (unloading -> unloaded), median of ${outs.length}`, value: ms(swapOut) },
      { label: "plain sequential read of the file", value: `${fmt(swap.diskReadMBps, 0)} MB/s from disk, ${fmt(swap.pageCacheReadMBps, 0)} MB/s from page cache (${swap.dropMethod ?? "could not drop it from page cache"})` },
      { label: `swap-in of ${swap.small}, median`, value: `from disk ${ms(median(ins(swap.small, "disk").map((e) => e.loadMs)))}, from page cache ${ms(median(ins(swap.small, "page cache").map((e) => e.loadMs)))}` },
    ],
    guess: {
      plan: `7B swap-in ~30 s, swap-out ~5 s (4.3 GB at ~143 MB/s)${f < 1 ? `; x ${f}: ${fmt(30 * f, 1)} s and ${fmt(5 * f, 1)} s` : ""}`,
      measured: `${ms(swapInMs)} in (to the first token), ${ms(swapOut)} out (${fmt(rate, 0)} MB/s; ~${fmt(fullSeconds, 1)} s for ${fmt(planBytes / 1e9, 1)} GB)`,
    },
    charts: [{ title: "Swap-in (runner load) time vs model file size, against plain reads of the file", spec: scatterWithRates(points, { x: "file", xTitle: "model file (MB)", y: "load", yTitle: "load time (ms)", series: "what", rates, xMax }) }],
    notes: [
      "Load = weights + context (KV cache) + one warm-up token, as the runner measures it. Models served from mmap (allow_overcommit, as the large model here) map the file: their pages are read on first use, so part of a disk read moves into the first tokens (the TTFT figure).",
      f < 1 ? "Scaling up by size alone assumes the same MB/s: on a Jetson the NVMe (1.4-3.2 GB/s) and a GPU upload change it; run the report there for the real figure." : "",
    ].filter(Boolean),
  };
}

function q4(data: ReportData): Section {
  const pressure = data.pressure;
  const last = pressure.cycles.at(-1);
  const kept = last ? last.unloadedRssBytes - pressure.baselineRssBytes : Number.NaN;
  const errors = pressure.estimates.map((row) => (row.estimatedBytes - row.measuredBytes) / row.measuredBytes);
  const over = pressure.estimates.reduce((sum, row) => sum + Math.max(0, row.estimatedBytes - row.measuredBytes), 0);
  const samples = data.swaps.samples;
  const peakCharged = Math.max(...samples.map((sample) => sample.charged));
  const peakRss = Math.max(...samples.map((sample) => sample.runnersRss));
  const budget = data.swaps.budgetBytes;
  const recycled = last?.recycled ?? 0;
  return {
    number: 4,
    question: "What is the impact of memory fragmentation?",
    tests: "Test 3 (phase A): memory pressure points — load/unload cycles in one long-lived shared runner; estimates vs measured footprints; the budget used at peak in test 5's trace",
    answerable: true,
    answer:
      `${Math.max(0, kept) > 0.05 * pressure.budgetBytes ? "It matters" : "Little"}: after ${plural(pressure.cycles.length, "cycle")} of loading and unloading ${pressure.cycled.length} models beside ${pressure.keptModel}, the shared runner held ${mb(kept, 1)} more than before (${pct(Math.max(0, kept), pressure.budgetBytes)} of the budget${recycled ? `; placement replaced ${plural(recycled, "runner")} that kept memory` : ""}); ` +
      `placement's header estimates were off by ${fmt(100 * mean(errors.map(Math.abs)), 0)}% on average, and the trace used up to ${pct(peakCharged, budget)} of the budget (RSS ${pct(peakRss, budget)}).`,
    figures: [
      { label: "runner RSS with only the kept model, before the cycles", value: mb(pressure.baselineRssBytes, 1) },
      { label: "after each cycle's unloads", value: pressure.cycles.map((cycle) => mb(cycle.unloadedRssBytes, 1)).join(", ") },
      { label: "estimate vs measured footprint (mean |error|; over-estimates summed)", value: `${fmt(100 * mean(errors.map(Math.abs)), 0)}%; ${mb(over)} over-estimated in total` },
      { label: "peak during test 5's trace: charged / runners' RSS vs budget", value: `${mb(peakCharged)} / ${mb(peakRss)} of ${mb(budget)}` },
      ...(pressure.runnerReplaced ? [{ label: "the runner process", value: "was replaced during the cycles" }] : []),
    ],
    guess: { plan: "no figure: the plan asked whether fragmentation matters", measured: `${mb(kept, 1)} kept after ${pressure.cycles.length} cycles; estimates ${fmt(100 * mean(errors), 0)}% off (signed mean)` },
    charts: [
      {
        title: `The shared runner's RSS through load/unload cycles (${pressure.keptModel} stays resident)`,
        spec: lines(
          pressure.cycles.flatMap((cycle) => [
            { cycle: cycle.cycle, series: "all cycled models loaded", mb: cycle.loadedRssBytes / MB },
            { cycle: cycle.cycle, series: "after unloading them", mb: cycle.unloadedRssBytes / MB },
          ]),
          { x: "cycle", xTitle: "cycle", xType: "ordinal", y: "mb", yTitle: "runner RSS (MB)", series: "series", rule: { y: pressure.baselineRssBytes / MB, label: "before the first cycle" } },
        ),
      },
      {
        title: "Placement's estimate (GGUF header) vs the footprint the runner measured",
        spec: groupedBars(
          pressure.estimates.flatMap((row) => [
            { model: row.model, what: "estimated", mb: row.estimatedBytes / MB },
            { model: row.model, what: "measured", mb: row.measuredBytes / MB },
          ]),
          { x: "model", xTitle: null, y: "mb", yTitle: "MB", group: "what", width: 560 },
        ),
      },
    ],
    notes: ["Placement charges measured footprints once a model has loaded, so an estimate error costs only until the first load."],
  };
}

function q5(data: ReportData): Section {
  const multi = data.multiTask;
  const footprints = new Map<string, number>();
  const add = (name: string, bytes: number | undefined) => {
    if (bytes && bytes > 0 && !name.startsWith("small-") && name !== "balanced-0.5b") footprints.set(name, Math.max(bytes, footprints.get(name) ?? 0));
  };
  for (const model of data.maxSmall.fiveSmallMix.models) add(model.name, model.measuredBytes);
  for (const model of data.largeMix.models) add(model.name, model.measuredBytes);
  for (const load of data.loads) if (load.scenario !== "five-small (isolation: process)") add(load.model, load.measuredBytes);
  const names = [...footprints.keys()];
  // one shared runner holds both: the budget of a scenario with one runner (no spare)
  const pairBudget = data.scale.factor * PLAN_BUDGET_BYTES + (1 - data.scale.factor) * data.runnerAllowanceBytes;
  const runner = data.maxSmall.runnerBaseBytes;
  const cells = names.flatMap((a) =>
    names.map((b) => {
      const used = a === b ? footprints.get(a)! + runner : footprints.get(a)! + footprints.get(b)! + runner;
      return { a, b, headroom: (pairBudget - used) / MB, text: `${fmt((pairBudget - used) / MB, 0)}` };
    }),
  );
  const routed = multi.tasks.map((row) => `${row.task} -> ${row.servedBy.join("/")}`).join(", ");
  const swapped = multi.tasks.reduce((sum, row) => sum + row.swapped, 0);
  const requests = multi.tasks.reduce((sum, row) => sum + row.requests, 0);
  return {
    number: 5,
    question: "Which models complement each other for which tasks?",
    tests: "Test 7 (phase C): multi-task serving — the one-large-two-small scenario's tasks and routes, every task requested at once",
    answerable: true,
    answer:
      `Routed by task (${routed}), the one-large-two-small mix served ${requests} requests for ${plural(multi.tasks.length, "task")} at once with ${plural(swapped, "swap")}: ` +
      `models complement each other when they cover different tasks and fit together, and the fit matrix shows which pairs do${scaleNote(data)} (answer quality cannot be judged with random-weight models).`,
    figures: multi.tasks.map((row) => ({
      label: `task "${row.task}"`,
      value: `served by ${row.servedBy.join(", ")}; ${row.ok}/${row.requests} ok, TTFT p50 ${ms(row.ttftMsMedian)}, ${row.swapped} waited for a load`,
    })).concat([{ label: "all tasks together", value: `${fmt(multi.aggregateTokPerS, 0)} tok/s; loads started meanwhile: ${multi.loadsDuring}` }]),
    guess: { plan: "the plan's routes: code -> [coder-0.5b, llama-3b], chat -> llama-3b, story -> stories (deploy/one-large-two-small.yaml)", measured: routed },
    charts: [
      {
        title: `Which pairs fit together in one runner: MB left of a ${mb(pairBudget)} budget (negative: they cannot be resident together)`,
        spec: heatmap(cells, { x: "a", y: "b", value: "headroom", valueTitle: "MB left", text: "text" }),
      },
    ],
    notes: [
      `Footprints measured in this run (the largest of each model's loads); the runner's own ${mb(runner)} counted once (models share a runner); the budget is the plan's 5 GiB scaled, with room for one runner.`,
    ],
  };
}

function q6(data: ReportData): Section {
  const run = data.swapWhileServing;
  const during = run.loadEnd - run.loadStart;
  const yes = run.failed === 0 && run.tokPerSDuring > 0.25 * run.tokPerSBefore;
  return {
    number: 6,
    question: "Can we infer while swapping?",
    tests: "Test 6 (phase B): swap while serving — a small model streams while the large one loads from disk, in the same scenario",
    answerable: true,
    answer:
      `${yes ? "Yes" : "Not well"}: ${run.streamed} kept streaming at ${fmt(run.tokPerSDuring, 0)} tok/s during the ${ms(during)} load of ${run.loaded}${run.fromDisk ? " from disk" : ""} ` +
      `(${fmt(run.tokPerSBefore, 0)} tok/s before, ${fmt(run.tokPerSAfter, 0)} after; longest pause ${ms(run.maxGapDuringMs)} vs ${ms(run.maxGapBeforeMs)} before).`,
    figures: [
      { label: `tokens/s of ${run.streamed}: before / during / after the load`, value: `${fmt(run.tokPerSBefore, 0)} / ${fmt(run.tokPerSDuring, 0)} / ${fmt(run.tokPerSAfter, 0)}` },
      { label: "longest pause between tokens: during the load / before it", value: `${ms(run.maxGapDuringMs)} / ${ms(run.maxGapBeforeMs)}` },
      { label: `load of ${run.loaded}`, value: `${ms(during)}${run.fromDisk ? ", file dropped from page cache first" : ", file in page cache"}` },
      { label: "failed streams", value: `${run.failed}` },
    ],
    guess: { plan: "asked; the design requires yes (loads never stall other streams)", measured: `${yes ? "yes" : "no"}: ${fmt((100 * run.tokPerSDuring) / run.tokPerSBefore, 0)}% of the tokens/s before the load` },
    charts: [
      {
        title: `Tokens of ${run.streamed} over time; shaded: ${run.loaded} loading`,
        spec: timelineWithInterval(
          run.tokens.map((token) => ({ t: token.t / 1000, tokens: token.cumulative })),
          { x: "t", y: "tokens", xTitle: "time (s)", yTitle: "tokens streamed", start: run.loadStart / 1000, end: run.loadEnd / 1000, label: `${run.loaded} loading` },
        ),
      },
    ],
    notes: ["The stream is one request after another (each up to the context size); a new request's first token counts as one pause."],
  };
}

function q7(data: ReportData): Section {
  const rows = data.warm
    .filter((row) => Number.isFinite(row.paramsB))
    .map((row) => ({ model: row.model, paramsB: row.paramsB, ttft: median(row.ttftMs), decode: median(row.decodeTokPerS), file: row.fileBytes }))
    .sort((a, b) => a.paramsB - b.paramsB);
  const interactive = rows.filter((row) => row.decode >= 10 && row.ttft <= 500);
  const sweet = interactive.at(-1);
  const beyond = rows.find((row) => !interactive.includes(row) && row.paramsB > (sweet?.paramsB ?? 0));
  const balancing = data.loadBalancing;
  const best = balancing.reduce((a, b) => (b.aggregateTokPerS > a.aggregateTokPerS ? b : a));
  return {
    number: 7,
    question: "Where is the sweet spot of response time vs capability?",
    tests: "Tests 7 and 8 (phase C): each scenario model warm and alone (TTFT, decode tokens/s by size), and load balancing (tokens/s vs concurrent streams)",
    answerable: true,
    answer:
      (sweet
        ? `${scaleNote(data) ? `On this box${scaleNote(data)}, t` : "T"}he largest model that stays interactive (>= 10 tok/s, first token <= 0.5 s) is ${sweet.model} (${paramsLabel(sweet.paramsB)} class): ${fmt(sweet.decode, 0)} tok/s, TTFT ${ms(sweet.ttft)}`
        : `No model stayed interactive (>= 10 tok/s, first token <= 0.5 s)${scaleNote(data)}`) +
      (beyond ? `; ${beyond.model} (${paramsLabel(beyond.paramsB)}) falls to ${fmt(beyond.decode, 0)} tok/s, TTFT ${ms(beyond.ttft)}` : "") +
      `; concurrent streams raise the total to ${fmt(best.aggregateTokPerS, 0)} tok/s at ${best.streams} streams (${fmt(balancing[0]!.aggregateTokPerS, 0)} for one).`,
    figures: [
      ...rows.map((row) => ({ label: `${row.model} (${paramsLabel(row.paramsB)} class, ${mb(row.file)})`, value: `decode ${fmt(row.decode, 0)} tok/s, warm TTFT ${ms(row.ttft)}` })),
      ...balancing.map((row) => ({ label: `${row.streams} concurrent stream(s) on one 0.5B model`, value: `${fmt(row.aggregateTokPerS, 0)} tok/s together, TTFT p50 ${ms(row.ttftMsMedian)}, ${row.replicas} replica(s), ${row.ok}/${row.streams} ok` })),
    ],
    guess: { plan: "no figure: the plan asked where the sweet spot is", measured: sweet ? `${sweet.model} (${paramsLabel(sweet.paramsB)} class)` : "none interactive" },
    charts: [
      {
        title: "Decode tokens/s and warm time to first token by model size (one stream, model resident)",
        spec: labelledPoints(
          rows.map((row) => ({ params: row.paramsB, decode: row.decode, ttft: row.ttft, label: row.model })),
          { x: "params", xTitle: "parameters, billions (the plan's size class; log scale)", ys: [{ field: "decode", title: "decode tokens/s" }, { field: "ttft", title: "warm TTFT (ms)" }], label: "label" },
        ),
      },
      {
        title: "Tokens/s vs concurrent streams on one 0.5B model (replicas: up to 2)",
        spec: lines(
          balancing.flatMap((row) => [
            { streams: row.streams, series: "tokens/s, all streams", value: row.aggregateTokPerS },
            { streams: row.streams, series: "tokens/s per stream", value: row.aggregateTokPerS / row.streams },
          ]),
          { x: "streams", xTitle: "concurrent streams", xType: "ordinal", y: "value", yTitle: "tokens/s", series: "series" },
        ),
      },
    ],
    notes: [
      "Capability is the plan's parameter count: forged random-weight models decode at the speed of a real model of their size but answer nothing useful.",
      "Interactive thresholds (10 tok/s, 0.5 s) are this report's choice: about reading speed, and a pause people notice.",
    ],
  };
}

function q8(data: ReportData): Section {
  const shared = data.maxSmall.sharedMemory;
  const isolated = data.isolated.memory;
  const onGpu = data.gpu !== "cpu" && data.box.gpu !== undefined;
  if (!onGpu || shared.gpuBytes === undefined || isolated.gpuBytes === undefined) {
    const why = data.box.gpu === undefined
      ? "this machine has no GPU (no NVIDIA device, not a Jetson), so no model holds GPU memory to share"
      : data.gpu === "cpu"
        ? `this run kept models on the CPU (--gpu cpu) although the box has ${data.box.gpu}`
        : "per-process GPU memory is not readable here (nvidia-smi lists none on a Jetson, where GPU memory is part of the unified pool: question 9's figures include it there)";
    return {
      number: 8,
      question: "How is GPU memory shared between models?",
      tests: "Question 9's runs, on the GPU",
      answerable: false,
      answer: `Not answerable on this machine: ${why}; run the report on the Jetson (README) for this answer.`,
      figures: [],
      guess: { plan: "asked, no figure", measured: "not measured here" },
      charts: [],
      notes: ["On a discrete NVIDIA GPU the report reads each runner's GPU memory from nvidia-smi in question 9's shared and isolated runs: models in one runner share one CUDA context, isolated ones pay one each."],
    };
  }
  const perShared = shared.gpuBytes / shared.models;
  const perIsolated = isolated.gpuBytes / isolated.models;
  return {
    number: 8,
    question: "How is GPU memory shared between models?",
    tests: "Question 9's runs, on the GPU",
    answerable: true,
    answer: `With ${shared.models} models in ${plural(shared.runners, "runner")} the GPU held ${mb(perShared)} per model; one runner each: ${mb(perIsolated)} per model (${mb(perIsolated - perShared)} more: a CUDA context per process).`,
    figures: [
      { label: "GPU memory (nvidia-smi), shared runner", value: `${mb(shared.gpuBytes)} for ${shared.models} models` },
      { label: "GPU memory, one runner per model", value: `${mb(isolated.gpuBytes)} for ${isolated.models} models` },
    ],
    guess: { plan: "asked, no figure", measured: `${mb(perIsolated - perShared)} per model for isolation` },
    charts: [
      {
        title: "GPU memory per model: shared runner vs one runner per model",
        spec: stackedBars(
          [
            { runners: "shared", part: "GPU memory per model", mb: perShared / MB },
            { runners: "isolated", part: "GPU memory per model", mb: perIsolated / MB },
          ],
          { x: "runners", xTitle: null, y: "mb", yTitle: "MB per model", part: "part" },
        ),
      },
    ],
    notes: [],
  };
}

function q9(data: ReportData): Section {
  const shared = data.maxSmall.sharedMemory;
  const isolated = data.isolated.memory;
  const overhead = (memory: typeof shared) => (memory.rssBytes - memory.modelBytes) / memory.models;
  const perModelExtra = overhead(isolated) - overhead(shared);
  const pssOverhead = (memory: typeof shared) => (memory.pssBytes - memory.modelBytes) / memory.models;
  const pssExtra = pssOverhead(isolated) - pssOverhead(shared);
  const fsh = data.failoverShared;
  const fiso = data.failoverIsolated;
  const sharedBudget = data.scenarios[0]!.budgetBytes;
  const blast = (result: typeof fsh) =>
    `${result.bystanderFailed ? `${result.bystander}'s stream failed too` : `${result.bystander}'s stream was unaffected`} (${result.sameProcess ? "same process" : "its own process"}${result.killedMidStream ? "" : "; the streams ended before the kill"})`;
  return {
    number: 9,
    question: "Process isolation vs shared memory: what does each cost?",
    tests: "Test 9 (phase C): failover, with models sharing a runner and with `isolation: process`; and the five-small models' memory both ways",
    answerable: true,
    answer:
      `A runner of its own costs ${mb(perModelExtra)} more per model (RSS; ${mb(pssExtra)} counting shared library pages once): ${isolated.models} models took ${mb(isolated.rssBytes)} in ${isolated.runners} runners vs ${mb(shared.rssBytes)} in ${shared.runners}; ` +
      ([fsh, fiso].some((result) => result.victimError.startsWith("not measured"))
        ? `the crash test was not measured in this run (${[fsh, fiso].find((result) => result.victimError.startsWith("not measured"))!.victimError}).`
        : `it buys a crash domain: killing ${fsh.victim}'s runner ${fsh.bystanderFailed ? "also failed" : "did not fail"} the other model's stream when shared, and ${fiso.bystanderFailed ? "failed" : "did not fail"} it when isolated.`),
    figures: [
      { label: `shared: ${shared.models} models, ${plural(shared.runners, "runner")}`, value: `RSS ${mb(shared.rssBytes)}, PSS ${mb(shared.pssBytes)}; overhead beyond the models ${mb(overhead(shared))} per model` },
      { label: `isolated: ${isolated.models} models, ${plural(isolated.runners, "runner")}`, value: `RSS ${mb(isolated.rssBytes)}, PSS ${mb(isolated.pssBytes)}; overhead ${mb(overhead(isolated))} per model; loading them all at once took ${ms(data.isolated.loadAllMs)}` },
      { label: "isolated, against the scenario's budget", value: `${mb(isolated.rssBytes)} vs ${mb(sharedBudget)}: ${isolated.rssBytes <= sharedBudget ? "fits" : "does not fit"}` },
      { label: "a runner killed mid-stream, shared", value: blast(fsh) },
      { label: "a runner killed mid-stream, isolated", value: blast(fiso) },
      { label: `${fsh.victim} serving again after the kill (new runner + load), TTFT`, value: `shared ${ms(fsh.recoveryTtftMs)}, isolated ${ms(fiso.recoveryTtftMs)}` },
    ],
    guess: { plan: "the plan compared containers per model with shared memory; the design's estimate: ~125 MiB per Node runner", measured: `${mb(perModelExtra)} per model for a runner of its own` },
    charts: [
      {
        title: "Memory per model: the model's own footprint and the runner overhead, shared vs one runner per model (RSS)",
        spec: stackedBars(
          [
            { runners: "shared runner", part: "model (measured footprint)", mb: shared.modelBytes / shared.models / MB },
            { runners: "shared runner", part: "runner overhead", mb: overhead(shared) / MB },
            { runners: "one runner per model", part: "model (measured footprint)", mb: isolated.modelBytes / isolated.models / MB },
            { runners: "one runner per model", part: "runner overhead", mb: overhead(isolated) / MB },
          ],
          { x: "runners", xTitle: null, y: "mb", yTitle: "MB per model", part: "part" },
        ),
      },
    ],
    notes: ["RSS counts shared library pages (Node, llama.cpp) in every process that maps them; PSS splits them among those processes. Spare runners are left out of both."],
  };
}

function q10(data: ReportData): Section {
  const swaps = data.swaps;
  const ok = swaps.requests.filter((request) => request.ok);
  const swapped = ok.filter((request) => request.swapped);
  const resident = ok.filter((request) => !request.swapped);
  const failed = swaps.requests.length - ok.length;
  const models = [...new Set(swaps.requests.map((request) => request.model))];
  const different = swaps.bursts.find((burst) => burst.kind === "different models");
  const one = swaps.bursts.find((burst) => burst.kind === "one model");
  const t0 = swaps.traceStart;
  const memory = swaps.samples
    .filter((sample) => sample.t <= swaps.traceEnd)
    .flatMap((sample) => [
      { t: (sample.t - t0) / 1000, series: "charged by placement", mb: sample.charged / MB },
      { t: (sample.t - t0) / 1000, series: "runner processes' RSS", mb: sample.runnersRss / MB },
    ]);
  const random = seededRandom(7); // plot jitter: the same data draws the same plot
  return {
    number: 10,
    question: "How does swapping perform under concurrent access?",
    tests: "Test 5 (phase B): concurrent swaps — a trace of concurrent bursts over more models than fit, then cold models requested at once",
    answerable: true,
    answer:
      `${failed === 0 ? "All" : `${ok.length} of`} ${swaps.requests.length} requests in bursts of up to 3 over ${models.length} models succeeded${failed ? ` (${failed} failed)` : ""}, with ${plural(swaps.loads, "load")} and ${plural(swaps.evictions, "eviction")}; ` +
      `a request that waited for a swap saw its first token after ${ms(median(swapped.map((r) => r.ttftMs)))} (p50) vs ${ms(median(resident.map((r) => r.ttftMs)))} when resident` +
      (one ? `, and ${one.models.length} concurrent requests for one cold model shared ${plural(one.loads, "load")}.` : "."),
    figures: [
      { label: "trace", value: `${swaps.requests.length} requests, ${ok.length} ok, ${swapped.length} waited for a load; ${swaps.loads} loads, ${swaps.evictions} evictions` },
      { label: "TTFT, waited for a swap: p50 / p99", value: `${ms(median(swapped.map((r) => r.ttftMs)))} / ${ms(percentile(swapped.map((r) => r.ttftMs), 99))}` },
      { label: "TTFT, model resident: p50 / p99", value: `${ms(median(resident.map((r) => r.ttftMs)))} / ${ms(percentile(resident.map((r) => r.ttftMs), 99))}` },
      ...(different ? [{ label: `${different.models.length} cold models requested at once`, value: `${different.ok}/${different.models.length} ok, ${plural(different.loads, "load")}, all answered in ${ms(different.wallMs)}; TTFTs ${different.ttftMs.map(ms).join(", ")}` }] : []),
      ...(one ? [{ label: `${one.models.length} requests at once for one cold model`, value: `${one.ok}/${one.models.length} ok, ${plural(one.loads, "load")} (coalesced), TTFTs ${one.ttftMs.map(ms).join(", ")}` }] : []),
    ],
    guess: { plan: "asked, no figure; the design: coalesce concurrent requests for one cold model into one load, serve queued requests before evicting", measured: `${failed} failed, ${one ? plural(one.loads, "load") : "n/a"} for ${one?.models.length ?? 0} requests of one cold model` },
    charts: [
      {
        title: "Residency of each model and memory during the trace",
        spec: residencyAndMemory(
          swaps.intervals.map((interval) => ({ model: interval.model, state: interval.state, start: (interval.start - t0) / 1000, end: (interval.end - t0) / 1000 })),
          memory,
          { budgetMb: swaps.budgetBytes / MB, models, seconds: (swaps.traceEnd - t0) / 1000 },
        ),
      },
      {
        title: "Time to first token during the trace, with and without a swap",
        spec: distribution(
          ok.filter((request) => Number.isFinite(request.ttftMs)).map((request) => ({ kind: request.swapped ? "waited for a swap" : "model resident", ttft: request.ttftMs, jitter: random() })),
          { category: "kind", value: "ttft", valueTitle: "TTFT (ms, log scale)", log: true },
        ),
      },
    ],
    notes: [
      "Each burst's requests start together; the next burst starts when the previous one is answered.",
      "TTFT is the client's time to the first text: a forged model's first tokens may be bytes that make no whole character yet, so it can come a few tokens late (n/a: none came before the end).",
    ],
  };
}
