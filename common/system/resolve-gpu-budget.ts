import { ConfigError } from "../config/config-error.js";
import type { Budget } from "../config/config-types.js";
import type { GpuMemoryReadings, MemoryReadings } from "./memory-source.js";

/**
 * Bytes of GPU memory placement may give models under `gpu_budget`, on a discrete GPU;
 * undefined when gpu_budget is not set (GPU memory not budgeted: llama.cpp fits layers into
 * what is free). A percentage is of the GPU memory free when placement starts (`gpu`).
 * Refused on unified memory, where GPU allocations come out of the DRAM that `budget`
 * already covers: charging them to a second budget would count them twice.
 */
export function resolveGpuBudget(gpuBudget: Budget | undefined, readings: MemoryReadings, gpu: GpuMemoryReadings | undefined): number | undefined {
  if (gpuBudget === undefined) return undefined;
  if (readings.unifiedMemory) {
    throw new ConfigError(
      "gpu_budget is for discrete GPUs, but CPU and GPU share memory on this box (a Jetson, or unified_memory: true), " +
        "so budget already covers what models take on the GPU: remove gpu_budget, or set unified_memory: false if the GPU has its own memory",
    );
  }
  if (gpuBudget.kind === "bytes") return gpuBudget.bytes;
  if (gpu === undefined || gpu.totalBytes <= 0) {
    throw new ConfigError(
      `gpu_budget is ${Math.round(gpuBudget.fraction * 100)}% of free GPU memory, but no GPU was found (nvidia-smi is not on placement's PATH, or there is no device): ` +
        "give it as a size like 20GiB, or remove it",
    );
  }
  return Math.floor(gpu.freeBytes * gpuBudget.fraction);
}
