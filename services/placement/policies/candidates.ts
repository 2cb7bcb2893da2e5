import type { ResidentModel } from "./eviction-policy.js";

/** Why a resident model may not be evicted now, or undefined if it may. */
export type Protection = "pinned" | "leased" | "young";

export function protectionOf(model: ResidentModel, nowMs: number, minResidencyMs: number): Protection | undefined {
  if (model.pinned) return "pinned";
  if (model.leases > 0) return "leased";
  if (nowMs - model.loadedAtMs < minResidencyMs) return "young";
  return undefined;
}

/** Eviction candidates: resident, not pinned, no stream in flight, past min residency. */
export function evictionCandidates(
  resident: readonly ResidentModel[],
  nowMs: number,
  minResidencyMs: number,
): ResidentModel[] {
  return resident.filter((model) => protectionOf(model, nowMs, minResidencyMs) === undefined);
}

/** Bytes held by protected models, by reason (for "blocked" messages). */
export function protectedBytes(
  resident: readonly ResidentModel[],
  nowMs: number,
  minResidencyMs: number,
): Record<Protection, number> {
  const totals: Record<Protection, number> = { pinned: 0, leased: 0, young: 0 };
  for (const model of resident) {
    const protection = protectionOf(model, nowMs, minResidencyMs);
    if (protection !== undefined) totals[protection] += model.bytes;
  }
  return totals;
}
