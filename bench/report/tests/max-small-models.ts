import type { RunContext } from "../run-context.js";
import type { Scenario } from "../scenarios.js";
import type { Session } from "../session.js";
import { runnersMemory, type RunnersMemory } from "../process-memory.js";
import { aggregateTokPerS } from "../streams.js";
import { median } from "../../lib/report.js";

/**
 * Test 1 (phase A, concurrent capacity): the five-small scenario's models are loaded one by one,
 * then copies of its 0.5B model, until placement must evict one to make room. Before the copies,
 * the scenario's own five serve one stream each at once (the "5 small" mix of test 2).
 */

export interface LoadStep {
  model: string;
  t: number;
  residentCount: number;
  /** Resident models of the 0.5B class (0.3-1.2B parameters). */
  residentSmall: number;
  chargedBytes: number;
  runnersRssBytes: number;
  evicted: string[];
}

export interface MixMeasurement {
  models: { name: string; paramsB: number; fileBytes: number; measuredBytes: number; estimatedBytes: number }[];
  memory: RunnersMemory;
  chargedBytes: number;
  budgetBytes: number;
  /** One stream per model, all at once. */
  aggregateTokPerS: number;
  ttftMsMedian: number;
  streamsOk: number;
  streams: number;
}

export interface MaxSmallResult {
  budgetBytes: number;
  steps: LoadStep[];
  maxResidentSmall: number;
  maxResident: number;
  /** The first eviction: which model made room for which. */
  firstEviction: string | undefined;
  smallMeasuredBytes: number[];
  smallFileBytes: number[];
  runnerBaseBytes: number;
  fiveSmallMix: MixMeasurement;
  /** The scenario's own five, shared runner (question 9's "shared" side). */
  sharedMemory: RunnersMemory;
}

export const isSmallClass = (paramsB: number) => paramsB >= 0.3 && paramsB <= 1.2;

export async function measureMix(session: Session, scenario: Scenario, names: readonly string[], maxTokens: number): Promise<MixMeasurement> {
  await session.settled();
  const status = await session.status();
  const byName = new Map(status.models.map((entry) => [entry.info!.name, entry.info!]));
  const streams = await Promise.all(names.map((model) => session.generate({ model, maxTokens })));
  const sample = await session.sample();
  return {
    models: names.map((name) => {
      const info = byName.get(name)!;
      const model = scenario.models.find((entry) => entry.name === name)!;
      return { name, paramsB: model.paramsB, fileBytes: model.fileBytes, measuredBytes: info.measuredBytes, estimatedBytes: info.estimatedBytes };
    }),
    memory: runnersMemory(status),
    chargedBytes: sample.charged,
    budgetBytes: status.budgetBytes,
    aggregateTokPerS: aggregateTokPerS(streams),
    ttftMsMedian: median(streams.map((stream) => stream.ttftMs)),
    streamsOk: streams.filter((stream) => stream.ok).length,
    streams: streams.length,
  };
}

export async function maxSmallModels(session: Session, scenario: Scenario, context: RunContext): Promise<MaxSmallResult> {
  const paramsOf = new Map(scenario.models.map((model) => [model.name, model.paramsB]));
  const own = scenario.models.filter((model) => !model.name.startsWith("small-")).map((model) => model.name);
  const copies = scenario.models.filter((model) => model.name.startsWith("small-")).map((model) => model.name);
  const steps: LoadStep[] = [];
  let firstEviction: string | undefined;
  const loadAndRecord = async (model: string) => {
    const eventsBefore = session.events.length;
    await session.load(model);
    await session.settled();
    const evicted = session.events.slice(eventsBefore).filter((event) => event.kind === "unloading" && event.reason.cause === "evicted").map((event) => ("model" in event ? event.model : ""));
    const sample = await session.sample();
    steps.push({
      model,
      t: sample.t,
      residentCount: sample.resident.length,
      residentSmall: sample.resident.filter((name) => isSmallClass(paramsOf.get(name) ?? Number.NaN)).length,
      chargedBytes: sample.charged,
      runnersRssBytes: sample.runnersRss,
      evicted,
    });
    if (evicted.length > 0 && firstEviction === undefined) firstEviction = `${evicted.join(", ")} evicted to load ${model}`;
    return evicted.length > 0;
  };

  context.step("test 1: loading the five small models");
  for (const model of own) await loadAndRecord(model);
  context.step("test 2: the five small models serve at once");
  const fiveSmallMix = await measureMix(session, scenario, own, context.quick ? 8 : 32);
  const sharedMemory = fiveSmallMix.memory;
  context.step("test 1: copies of the 0.5B model until one is evicted");
  for (const model of copies) if (await loadAndRecord(model)) break;

  const status = await session.status();
  const smalls = status.models.filter((entry) => isSmallClass(paramsOf.get(entry.info!.name) ?? Number.NaN) && entry.info!.measuredBytes > 0);
  const spare = status.runners.find((runner) => runner.models.length === 0);
  return {
    budgetBytes: status.budgetBytes,
    steps,
    maxResidentSmall: Math.max(0, ...steps.map((step) => step.residentSmall)),
    maxResident: Math.max(0, ...steps.map((step) => step.residentCount)),
    firstEviction,
    smallMeasuredBytes: smalls.map((entry) => entry.info!.measuredBytes),
    smallFileBytes: smalls.map((entry) => entry.info!.fileBytes),
    runnerBaseBytes: spare?.baseBytes ?? status.runners[0]?.baseBytes ?? 0,
    fiveSmallMix,
    sharedMemory,
  };
}
