import type { ResidentModel } from "./eviction-policy.js";

/**
 * Picks the victims that free at least `roomNeededBytes`, given candidates ranked by
 * the policy from cheapest to lose to dearest. Choosing the set of least total policy
 * cost is a knapsack problem, so this is greedy-plus-prune:
 *  1. greedy: take the shortest prefix of the ranking that frees enough room;
 *  2. prune: walk that prefix from dearest to cheapest and spare every victim whose
 *     removal still leaves enough room.
 * The result is minimal (no victim can be spared), never dearer than the greedy prefix,
 * and keeps the dearest models it can: e.g. with A(100) B(100) C(500) ranked in that
 * order and 450 bytes needed, it evicts C alone rather than A, B and C.
 * Returns undefined when all candidates together cannot free enough room.
 */
export function pickVictimSet(
  ranked: readonly ResidentModel[],
  roomNeededBytes: number,
): ResidentModel[] | undefined {
  const prefix: ResidentModel[] = [];
  let freed = 0;
  for (const candidate of ranked) {
    if (freed >= roomNeededBytes) break;
    prefix.push(candidate);
    freed += candidate.bytes;
  }
  if (freed < roomNeededBytes) return undefined;

  const spared = new Set<ResidentModel>();
  for (let i = prefix.length - 1; i >= 0; i--) {
    const victim = prefix[i]!;
    if (freed - victim.bytes >= roomNeededBytes) {
      spared.add(victim);
      freed -= victim.bytes;
    }
  }
  return prefix.filter((victim) => !spared.has(victim));
}
