import type { Isolation } from "../../common/config/config-types.js";

/** What the choice needs to know about a runner process. */
export interface RunnerSlot {
  id: string;
  /** Registered and not stopping: it can take a load now. */
  ready: boolean;
  /** Started but not registered yet: it will be able to take a load soon. */
  starting: boolean;
  /** It hosts a model marked `isolation: process`. */
  isolated: boolean;
  /** Models it holds, loads or unloads. */
  models: readonly string[];
}

export type LoadTarget =
  | { kind: "runner"; runnerId: string }
  /** A runner that is starting will take it. */
  | { kind: "wait_for_runner" }
  | { kind: "new_runner" };

/**
 * Where a load of `model` goes. Pure.
 * - `isolation: process`: a runner with no model (its own crash domain), else a new one.
 * - `shared`: a runner that already hosts shared models (the one hosting the most first:
 *   models packed into few processes pay a runner's own memory once), else an empty runner,
 *   else a new one.
 * A runner that already holds the model (another replica) is never chosen.
 */
export function chooseRunnerForLoad(model: { name: string; isolation: Isolation }, runners: readonly RunnerSlot[]): LoadTarget {
  const candidates = runners.filter((runner) => !runner.isolated && !runner.models.includes(model.name));
  const ready = candidates.filter((runner) => runner.ready);
  const empty = ready.find((runner) => runner.models.length === 0);
  if (model.isolation === "process") {
    if (empty) return { kind: "runner", runnerId: empty.id };
  } else {
    let best: RunnerSlot | undefined;
    for (const runner of ready) if (runner.models.length > 0 && (!best || runner.models.length > best.models.length)) best = runner;
    const chosen = best ?? empty;
    if (chosen) return { kind: "runner", runnerId: chosen.id };
  }
  if (candidates.some((runner) => runner.starting && runner.models.length === 0)) return { kind: "wait_for_runner" };
  return { kind: "new_runner" };
}
