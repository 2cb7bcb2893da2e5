import { evictionCandidates, protectedBytes } from "./candidates.js";
import type { EvictionDecision, EvictionRequest, ResidentModel } from "./eviction-policy.js";
import { pickVictimSet } from "./victim-set.js";

/** Orders eviction candidates from cheapest to lose to dearest; must not mutate its input. */
export type RankCandidates = (candidates: readonly ResidentModel[]) => ResidentModel[];

/**
 * The decision skeleton shared by all policies: fits -> nothing to evict; otherwise
 * the policy ranks the candidates and pickVictimSet chooses a minimal victim set;
 * blocked when the candidates together cannot make room (or the model exceeds the budget).
 */
export function decideEviction(request: EvictionRequest, rank: RankCandidates): EvictionDecision {
  const { needBytes, budgetBytes, resident, nowMs, minResidencyMs } = request;
  const candidates = evictionCandidates(resident, nowMs, minResidencyMs);
  const reclaimableBytes = sumBytes(candidates);

  if (needBytes > budgetBytes) {
    return {
      kind: "blocked",
      reason: `needs ${needBytes} bytes, more than the whole budget of ${budgetBytes} bytes`,
      reclaimableBytes,
    };
  }

  const freeBytes = budgetBytes - sumBytes(resident);
  if (needBytes <= freeBytes) return { kind: "fits" };

  const roomNeededBytes = needBytes - freeBytes;
  const victims = pickVictimSet(rank(candidates), roomNeededBytes);
  if (victims === undefined) {
    const held = protectedBytes(resident, nowMs, minResidencyMs);
    return {
      kind: "blocked",
      reason:
        `needs ${roomNeededBytes} more bytes but only ${reclaimableBytes} are reclaimable now ` +
        `(pinned ${held.pinned}, leased ${held.leased}, younger than min residency ${held.young})`,
      reclaimableBytes,
    };
  }
  return { kind: "evict", victims: victims.map((victim) => victim.name), freedBytes: sumBytes(victims) };
}

function sumBytes(models: readonly ResidentModel[]): number {
  let total = 0;
  for (const model of models) total += model.bytes;
  return total;
}
