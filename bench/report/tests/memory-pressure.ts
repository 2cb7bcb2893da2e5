import { vmRssBytes } from "../../lib/process-tree.js";
import type { RunContext } from "../run-context.js";
import type { Session } from "../session.js";

/**
 * Test 3 (phase A, memory pressure points): how far placement's estimate is from what a load
 * really takes, and whether a long-lived shared runner keeps memory after models come and go
 * (fragmentation): one model stays resident in the runner while the others are loaded and
 * unloaded in cycles; the runner's RSS after each cycle against its RSS before the first.
 */

export interface EstimateRow {
  model: string;
  fileBytes: number;
  estimatedBytes: number;
  measuredBytes: number;
}

export interface CycleRow {
  cycle: number;
  /** The runner's RSS with every cycled model loaded, and after they were unloaded. */
  loadedRssBytes: number;
  unloadedRssBytes: number;
  /** Runners placement ended because they kept memory after an unload (runner_recycled). */
  recycled: number;
}

export interface MemoryPressureResult {
  estimates: EstimateRow[];
  keptModel: string;
  cycled: string[];
  baselineRssBytes: number;
  cycles: CycleRow[];
  /** The runner process was replaced during the cycles (a recycle, or a crash). */
  runnerReplaced: boolean;
  budgetBytes: number;
}

export async function memoryPressure(session: Session, keptModel: string, candidates: readonly string[], context: RunContext): Promise<MemoryPressureResult> {
  context.step("test 3: load/unload cycles in one shared runner");
  const before = await session.status();
  const estimates: EstimateRow[] = before.models
    .filter((entry) => entry.info!.measuredBytes > 0)
    .map((entry) => ({ model: entry.info!.name, fileBytes: entry.info!.fileBytes, estimatedBytes: entry.info!.estimatedBytes, measuredBytes: entry.info!.measuredBytes }));

  // Only the kept model stays resident, pinned so that no load evicts it; the cycled models are
  // the candidates that fit beside it with room to spare (measured footprints vary from load to load).
  await session.load(keptModel);
  await session.pin(keptModel, true);
  for (const model of await session.residentModels()) if (model !== keptModel) await session.unload(model);
  await session.settled();
  const hostOfKept = async () => (await session.status()).runners.find((runner) => runner.models.some((hosted) => hosted.name === keptModel));
  const host = await hostOfKept();
  if (!host) throw new Error(`test 3: no runner hosts ${keptModel}`);
  const measured = new Map(estimates.map((row) => [row.model, row.measuredBytes]));
  const room = 0.7 * (before.budgetBytes - before.runners.reduce((sum, runner) => sum + runner.baseBytes, 0) - (measured.get(keptModel) ?? 0));
  const cycled: string[] = [];
  let used = 0;
  for (const model of candidates) {
    const bytes = measured.get(model) ?? Number.POSITIVE_INFINITY;
    if (used + bytes <= room) {
      cycled.push(model);
      used += bytes;
    }
  }
  const baselineRssBytes = vmRssBytes(host.pid);
  const recycledSoFar = () => session.events.filter((event) => event.kind === "unloaded" && event.reason.cause === "runner_recycled").length;
  const recycledAtStart = recycledSoFar();

  const cycles: CycleRow[] = [];
  const count = context.quick ? 1 : 6;
  try {
    for (let cycle = 1; cycle <= count; cycle++) {
      // in a different order each cycle, so that allocations interleave differently
      const order = cycle % 2 === 0 ? [...cycled].reverse() : [...cycled];
      for (const model of order) await session.load(model);
      await session.settled();
      const loadedRssBytes = vmRssBytes((await hostOfKept())?.pid ?? host.pid);
      for (const model of order) await session.unload(model);
      await session.settled();
      cycles.push({ cycle, loadedRssBytes, unloadedRssBytes: vmRssBytes((await hostOfKept())?.pid ?? host.pid), recycled: recycledSoFar() - recycledAtStart });
    }
  } finally {
    await session.pin(keptModel, false);
  }
  return {
    estimates,
    keptModel,
    cycled,
    baselineRssBytes,
    cycles,
    runnerReplaced: (await hostOfKept())?.pid !== host.pid,
    budgetBytes: before.budgetBytes,
  };
}
