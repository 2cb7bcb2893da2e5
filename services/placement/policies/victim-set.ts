import type { ResidentModel } from "./eviction-policy.js";

/**
 * Picks the victims that free at least `roomNeededBytes` of host memory and
 * `roomNeededGpuBytes` of GPU memory (0 unless the GPU has a budget of its own), given
 * candidates ranked by the policy from cheapest to lose to dearest. Choosing the set of
 * least total policy cost is a knapsack problem, so this is greedy-plus-prune:
 *  1. greedy: walk the ranking and take each candidate that frees memory in a dimension
 *     still short of room, until both have enough (a model that frees only host memory is
 *     passed over while only the GPU is short: evicting it would not help);
 *  2. prune: walk the taken ones from dearest to cheapest and spare every victim whose
 *     removal still leaves enough room in both dimensions.
 * The result is minimal (no victim can be spared), never dearer than the greedy set, and
 * keeps the dearest models it can: e.g. with A(100) B(100) C(500) ranked in that order and
 * 450 bytes needed, it evicts C alone rather than A, B and C.
 * Returns undefined when all candidates together cannot free enough room.
 */
export function pickVictimSet(ranked: readonly ResidentModel[], roomNeededBytes: number, roomNeededGpuBytes = 0): ResidentModel[] | undefined {
  const gpuOf = (model: ResidentModel) => model.gpuBytes ?? 0;
  const taken: ResidentModel[] = [];
  let freed = 0;
  let freedGpu = 0;
  for (const candidate of ranked) {
    const hostShort = freed < roomNeededBytes;
    const gpuShort = freedGpu < roomNeededGpuBytes;
    if (!hostShort && !gpuShort) break;
    if (!(hostShort && candidate.bytes > 0) && !(gpuShort && gpuOf(candidate) > 0)) continue;
    taken.push(candidate);
    freed += candidate.bytes;
    freedGpu += gpuOf(candidate);
  }
  if (freed < roomNeededBytes || freedGpu < roomNeededGpuBytes) return undefined;

  const spared = new Set<ResidentModel>();
  for (let i = taken.length - 1; i >= 0; i--) {
    const victim = taken[i]!;
    if (freed - victim.bytes >= roomNeededBytes && freedGpu - gpuOf(victim) >= roomNeededGpuBytes) {
      spared.add(victim);
      freed -= victim.bytes;
      freedGpu -= gpuOf(victim);
    }
  }
  return taken.filter((victim) => !spared.has(victim));
}
