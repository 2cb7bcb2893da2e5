import type { Box } from "./box.js";
import type { RunContext } from "./run-context.js";
import { RUNNER_ALLOWANCE_BYTES, scaleScenario, scenarioConfig, type Scenario, type ScaleOptions, type ScenarioModel } from "./scenarios.js";
import { Session } from "./session.js";
import { concurrentSwaps, type ConcurrentSwapsResult } from "./tests/concurrent-swaps.js";
import { failover, type FailoverResult } from "./tests/failover.js";
import { isolatedRunners, type IsolatedResult } from "./tests/isolation.js";
import { largeModelSwap, swapOutsOf, type LargeSwapResult, type SwapOut } from "./tests/large-model-swap.js";
import { loadBalancing, type StreamsRow } from "./tests/load-balancing.js";
import { maxSmallModels, measureMix, type MaxSmallResult, type MixMeasurement } from "./tests/max-small-models.js";
import { memoryPressure, type MemoryPressureResult } from "./tests/memory-pressure.js";
import { multiTask, warmByModel, type MultiTaskResult, type WarmRow } from "./tests/multi-task.js";
import { swapWhileServing, type SwapWhileServingResult } from "./tests/swap-while-serving.js";

/**
 * The research plan's nine tests on real stacks, one stack per scenario (plus one for isolated
 * runners), in the order that lets one stack serve several tests. Returns every raw result.
 */

export interface LoadPoint {
  scenario: string;
  model: string;
  fileBytes: number;
  loadMs: number;
  weightsMs: number;
  /** The footprint the runner measured (RSS growth + GPU memory). */
  measuredBytes: number;
}

export interface ScenarioSummary {
  id: string;
  file: string;
  planBudgetBytes: number;
  budgetBytes: number;
  runners: number;
  models: ScenarioModel[];
}

export interface ReportData {
  generatedAt: string;
  quick: boolean;
  box: Box;
  scale: { factor: number; why: string };
  gpu: string;
  runnerAllowanceBytes: number;
  scenarios: ScenarioSummary[];
  maxSmall: MaxSmallResult;
  pressure: MemoryPressureResult;
  swaps: ConcurrentSwapsResult;
  failoverShared: FailoverResult;
  largeMix: MixMeasurement;
  swapWhileServing: SwapWhileServingResult;
  multiTask: MultiTaskResult;
  warm: WarmRow[];
  largeSwap: LargeSwapResult;
  isolated: IsolatedResult;
  failoverIsolated: FailoverResult;
  loadBalancing: StreamsRow[];
  /** Every load in the run with the runner's timings. */
  loads: LoadPoint[];
  /** Every unload in the run. */
  swapOuts: (SwapOut & { scenario: string })[];
  phases: { name: string; ms: number }[];
}

export const STREAM_COUNTS = { quick: [1, 2, 4], full: [1, 2, 4, 8] };

/** How many progress steps a run takes (the tests call context.step once per step). */
export function plannedSteps(quick: boolean): number {
  const rounds = quick ? 1 : 3;
  const streams = (quick ? STREAM_COUNTS.quick : STREAM_COUNTS.full).length;
  // scenarios + stacks, tests 1-3, 5, 9 | 2, 6, 7, warm | 4 (+ rounds x 2 sources), warm | isolation, 9, 8 | charts
  return 1 + 4 + 3 + 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + rounds * 2 + 1 + 1 + 1 + streams + 1;
}

export async function runPlan(
  box: Box,
  scale: { factor: number; why: string },
  scaleOptions: Omit<ScaleOptions, "factor" | "extraSmallCopies" | "modelOverrides">,
  context: RunContext,
  options: { verbose: boolean; logEvents: boolean },
): Promise<ReportData> {
  const phases: { name: string; ms: number }[] = [];
  const timed = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await run();
    } finally {
      phases.push({ name, ms: performance.now() - started });
    }
  };
  // --quick: no spare runners, fewer models in the isolated run (each runner start costs seconds of CPU)
  const base = { ...scaleOptions, factor: scale.factor, ...(context.quick ? { spareRunners: 0 } : {}) };
  context.step("preparing the scenarios' models (forged once, then reused)");
  const fiveSmall = await scaleScenario("five-small", { ...base, extraSmallCopies: context.quick ? 4 : 8 });
  const mixed = await scaleScenario("one-large-two-small", base);
  const largeHot = await scaleScenario("large-hot-swap", base);
  const isolatedScenario = await scaleScenario("five-small", { ...base, modelOverrides: { isolation: "process" } });
  const projectRoot = scaleOptions.projectRoot;
  const loads: LoadPoint[] = [];
  const swapOuts: ReportData["swapOuts"] = [];
  const collect = (scenario: Scenario, session: Session) => {
    for (const event of session.events) {
      if (event.kind !== "loaded" || !event.timings) continue;
      loads.push({
        scenario: scenario.id,
        model: event.model,
        fileBytes: event.fileBytes,
        loadMs: event.timings.loadMs,
        weightsMs: event.timings.modelLoadMs,
        measuredBytes: event.measuredBytes,
      });
    }
    swapOuts.push(...swapOutsOf(session).map((out) => ({ ...out, scenario: scenario.id })));
  };
  const withSession = async <T>(name: string, scenario: Scenario, config: ReturnType<typeof scenarioConfig>, run: (session: Session) => Promise<T>): Promise<T> => {
    context.step(`starting ${name}`);
    const session = await Session.start(name, config, { verbose: options.verbose, logEvent: options.logEvents ? context.note : undefined });
    try {
      return await timed(name, () => run(session));
    } finally {
      collect(scenario, session);
      await session.stop();
    }
  };
  /** Up to the context of the model (or the smallest of several), less room for the prompt. */
  const maxTokensFor = (scenario: Scenario, ...names: string[]) => {
    const defaults = Number((scenario.document.defaults as Record<string, unknown>).context);
    const contexts = (scenario.document.models as Record<string, unknown>[])
      .filter((model) => names.includes(String(model.name)))
      .map((model) => Number(model.context ?? defaults));
    return Math.max(16, Math.min(defaults, ...contexts) - 32);
  };
  const name = (scenario: Scenario, paramsB: number) => scenario.models.find((model) => Math.abs(model.paramsB - paramsB) < 1e-9)!;

  // Scenario 1: five small (tests 1, 2's first mix, 3, 5, 9 with a shared runner)
  const s1 = await withSession("five-small", fiveSmall, scenarioConfig(fiveSmall, projectRoot), async (session) => {
    const maxSmall = await maxSmallModels(session, fiveSmall, context);
    const own = fiveSmall.models.filter((model) => !model.name.startsWith("small-"));
    const kept = own.reduce((a, b) => (b.fileBytes < a.fileBytes ? b : a));
    const pressure = await memoryPressure(session, kept.name, own.filter((model) => model !== kept).map((model) => model.name), context);
    const swaps = await concurrentSwaps(session, fiveSmall.models.map((model) => model.name), context);
    const [victim, bystander] = own.filter((model) => model !== kept).map((model) => model.name);
    const failoverShared = await failover(session, "shared", victim!, bystander!, context, maxTokensFor(fiveSmall, victim!, bystander!));
    return { maxSmall, pressure, swaps, failoverShared };
  });

  // Scenario 2: one large, two small (test 2's second mix, tests 6, 7, question 7)
  const large3b = mixed.models.reduce((a, b) => (b.fileBytes > a.fileBytes ? b : a));
  const s2 = await withSession("one-large-two-small", mixed, scenarioConfig(mixed, projectRoot), async (session) => {
    context.step("test 2: one large and two small models serve at once");
    for (const model of mixed.models) await session.load(model.name);
    const largeMix = await measureMix(session, mixed, mixed.models.map((model) => model.name), context.quick ? 8 : 32);
    // the stream: a real model where there is one (forged models' byte tokens often make no whole
    // character, so their text arrives in few pieces and hides pauses), else the smallest
    const streamed = mixed.models.find((model) => model.real && model !== large3b) ?? mixed.models.reduce((a, b) => (b.fileBytes < a.fileBytes ? b : a));
    const swapWhile = await swapWhileServing(session, streamed.name, large3b.name, large3b.path, maxTokensFor(mixed, streamed.name), context);
    const tasks = [...new Set([...mixed.models.flatMap((model) => model.tasks), ...Object.keys((mixed.document.routes as Record<string, unknown>) ?? {})])];
    const multi = await multiTask(session, tasks, mixed.models.map((model) => model.name), context);
    const warm = await warmByModel(session, mixed.models, context.quick ? 16 : 64, context);
    return { largeMix, swapWhile, multi, warm };
  });

  // Scenario 3: large hot swap (test 4, question 7's largest model)
  const s3 = await withSession("large-hot-swap", largeHot, scenarioConfig(largeHot, projectRoot), async (session) => {
    const large = largeHot.models.reduce((a, b) => (b.fileBytes > a.fileBytes ? b : a));
    const small = largeHot.models.find((model) => model !== large)!;
    const largeSwap = await largeModelSwap(session, large, small, context);
    const warm = await warmByModel(session, [large], context.quick ? 16 : 64, context);
    return { largeSwap, warm };
  });

  // Five small again, each in a runner of its own (question 9), plus a model with two replicas (test 8)
  const lbSource = name(isolatedScenario, 0.5);
  const lbModel = "balanced-0.5b";
  (isolatedScenario.document.models as Record<string, unknown>[]).push({
    name: lbModel,
    path: lbSource.path,
    isolation: "shared",
    replicas: { min: 1, max: 2 },
  });
  const isolatedBudget = isolatedScenario.budgetBytes + 3 * (RUNNER_ALLOWANCE_BYTES + 2 * lbSource.fileBytes);
  const s4 = await withSession("five-small, isolation: process", isolatedScenario, scenarioConfig(isolatedScenario, projectRoot, { budgetBytes: isolatedBudget }), async (session) => {
    const kept = s1.pressure.keptModel;
    const [victim, bystander] = isolatedScenario.models.map((model) => model.name).filter((model) => model !== kept);
    const own = context.quick ? [victim!, bystander!] : isolatedScenario.models.map((model) => model.name);
    const isolated = await isolatedRunners(session, own, context);
    const failoverIsolated = await failover(session, "process", victim!, bystander!, context, maxTokensFor(isolatedScenario, victim!, bystander!));
    const balancing = await loadBalancing(session, lbModel, context.quick ? STREAM_COUNTS.quick : STREAM_COUNTS.full, context.quick ? 32 : 128, context);
    return { isolated, failoverIsolated, balancing };
  });

  const summary = (scenario: Scenario): ScenarioSummary => ({
    id: scenario.id,
    file: scenario.file,
    planBudgetBytes: scenario.planBudgetBytes,
    budgetBytes: scenario.budgetBytes,
    runners: scenario.runners,
    models: scenario.models,
  });
  return {
    generatedAt: new Date().toISOString(),
    quick: context.quick,
    box,
    scale,
    gpu: scaleOptions.gpu,
    runnerAllowanceBytes: RUNNER_ALLOWANCE_BYTES,
    scenarios: [summary(fiveSmall), summary(mixed), summary(largeHot), { ...summary(isolatedScenario), id: "five-small (isolation: process)", budgetBytes: isolatedBudget }],
    maxSmall: s1.maxSmall,
    pressure: s1.pressure,
    swaps: s1.swaps,
    failoverShared: s1.failoverShared,
    largeMix: s2.largeMix,
    swapWhileServing: s2.swapWhile,
    multiTask: s2.multi,
    warm: [...s2.warm, ...s3.warm],
    largeSwap: s3.largeSwap,
    isolated: s4.isolated,
    failoverIsolated: s4.failoverIsolated,
    loadBalancing: s4.balancing,
    loads,
    swapOuts,
    phases,
  };
}
