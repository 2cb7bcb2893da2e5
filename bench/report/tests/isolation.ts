import { runnersMemory, type RunnersMemory } from "../process-memory.js";
import type { RunContext } from "../run-context.js";
import type { Session } from "../session.js";

/**
 * Question 9 (process isolation vs shared memory), the isolated side: the same models as the
 * five-small scenario, each marked `isolation: process` (a runner process of its own), loaded
 * at once under a budget that holds them all. Test 1 measured the shared side.
 */

export interface IsolatedResult {
  memory: RunnersMemory;
  /** Wall time to load them all at once (each needs a runner process started). */
  loadAllMs: number;
}

export async function isolatedRunners(session: Session, models: readonly string[], context: RunContext): Promise<IsolatedResult> {
  context.step(`question 9: ${models.length} models, one runner process each`);
  const started = performance.now();
  await Promise.all(models.map((model) => session.load(model)));
  const loadAllMs = performance.now() - started;
  await session.settled();
  return { memory: runnersMemory(await session.status()), loadAllMs };
}
