import type { Budget } from "../config/config-types.js";
import type { MemoryReadings } from "./memory-source.js";

/**
 * Bytes placement may give models under `budget`. A size is taken as is. A percentage is of
 * PHYSICAL memory on a unified-memory box (Jetson): there the budget covers what runners
 * hold on the CPU and on the GPU together, which both come out of the one DRAM, so it is
 * sized against all of it. Elsewhere it is of MemAvailable when placement starts (the GPU's
 * own memory is budgeted apart, by `gpu_budget`).
 */
export function resolveBudget(budget: Budget, readings: MemoryReadings): number {
  if (budget.kind === "bytes") return budget.bytes;
  const base = readings.unifiedMemory ? readings.physicalBytes : readings.availableBytes;
  return Math.floor(base * budget.fraction);
}
