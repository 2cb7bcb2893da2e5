/** Which model serves a request that names a task. Pure. */
export interface RouteCandidate {
  name: string;
  resident: boolean;
}

/**
 * Picks from a task's ordered fallback chain: the first choice, unless
 * `preferResident` and a resident model of the chain can serve at once.
 * Returns undefined for an unknown task.
 */
export function routeTask(chain: readonly RouteCandidate[] | undefined, preferResident: boolean): string | undefined {
  if (!chain || chain.length === 0) return undefined;
  if (preferResident) {
    const resident = chain.find((candidate) => candidate.resident);
    if (resident) return resident.name;
  }
  return chain[0]!.name;
}
