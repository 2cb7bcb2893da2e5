import { evictionCandidates, protectedBytes } from "./candidates.js";
import { totalBytes, type EvictionDecision, type EvictionRequest, type ResidentModel } from "./eviction-policy.js";
import { pickVictimSet } from "./victim-set.js";

/** Orders eviction candidates from cheapest to lose to dearest; must not mutate its input. */
export type RankCandidates = (candidates: readonly ResidentModel[]) => ResidentModel[];

/**
 * The decision skeleton shared by all policies: fits -> nothing to evict; otherwise
 * the policy ranks the candidates and pickVictimSet chooses a minimal victim set;
 * blocked when the candidates together cannot make room (or the model exceeds the budget).
 * With a GPU budget in the request, room is needed in host memory and GPU memory each, and
 * victims are chosen for the dimension(s) short of it.
 */
export function decideEviction(request: EvictionRequest, rank: RankCandidates): EvictionDecision {
  const { needBytes, budgetBytes, resident, nowMs, minResidencyMs } = request;
  const candidates = evictionCandidates(resident, nowMs, minResidencyMs);
  const reclaimableBytes = totalBytes(candidates);
  const gpuBudgeted = request.gpuBudgetBytes !== undefined;
  const needGpuBytes = gpuBudgeted ? (request.needGpuBytes ?? 0) : 0;
  const gpuBudgetBytes = request.gpuBudgetBytes ?? 0;

  if (needBytes > budgetBytes) {
    return {
      kind: "blocked",
      reason: `needs ${needBytes} bytes, more than the whole budget of ${budgetBytes} bytes`,
      reclaimableBytes,
    };
  }
  if (needGpuBytes > gpuBudgetBytes) {
    return {
      kind: "blocked",
      reason: `needs ${needGpuBytes} bytes of GPU memory, more than the whole GPU budget of ${gpuBudgetBytes} bytes`,
      reclaimableBytes,
    };
  }

  const roomNeededBytes = Math.max(0, needBytes - (budgetBytes - totalBytes(resident)));
  const roomNeededGpuBytes = gpuBudgeted ? Math.max(0, needGpuBytes - (gpuBudgetBytes - totalBytes(resident, "gpuBytes"))) : 0;
  if (roomNeededBytes === 0 && roomNeededGpuBytes === 0) return { kind: "fits" };

  const victims = pickVictimSet(rank(candidates), roomNeededBytes, roomNeededGpuBytes);
  if (victims === undefined) {
    const held = protectedBytes(resident, nowMs, minResidencyMs);
    const short = [
      roomNeededBytes > 0 ? `${roomNeededBytes} more bytes but only ${reclaimableBytes} are reclaimable now` : "",
      roomNeededGpuBytes > 0 ? `${roomNeededGpuBytes} more bytes of GPU memory but only ${totalBytes(candidates, "gpuBytes")} are reclaimable now` : "",
    ].filter(Boolean);
    return {
      kind: "blocked",
      reason: `needs ${short.join(", and ")} (pinned ${held.pinned}, leased ${held.leased}, younger than min residency ${held.young})`,
      reclaimableBytes,
    };
  }
  return { kind: "evict", victims: victims.map((victim) => victim.name), freedBytes: totalBytes(victims) };
}
