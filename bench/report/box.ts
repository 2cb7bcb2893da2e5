import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import { detectUnifiedMemory, parseMeminfo, PROC_MEMINFO } from "../../common/system/memory-source.js";
import { loadAverage } from "../lib/report.js";

/** The machine a report was measured on: every figure depends on it. */
export interface Box {
  hostname: string;
  cpuModel: string;
  cores: number;
  physicalBytes: number;
  availableBytes: number;
  /** A CUDA GPU: nvidia-smi's name, "Jetson (unified memory)", or undefined. */
  gpu: string | undefined;
  unifiedMemory: boolean;
  loadAverageAtStart: string;
  node: string;
  kernel: string;
}

const readText = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
};

export function describeBox(): Box {
  const meminfo = parseMeminfo(readText(PROC_MEMINFO) ?? "") ?? { physicalBytes: os.totalmem(), availableBytes: os.freemem() };
  const { unifiedMemory } = detectUnifiedMemory("auto", readText);
  return {
    hostname: os.hostname(),
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown CPU",
    cores: os.cpus().length,
    physicalBytes: meminfo.physicalBytes,
    availableBytes: meminfo.availableBytes,
    gpu: unifiedMemory ? "NVIDIA Jetson (unified memory)" : discreteGpu(),
    unifiedMemory,
    loadAverageAtStart: loadAverage(),
    node: process.version,
    kernel: os.release(),
  };
}

/** The first NVIDIA GPU nvidia-smi lists, or undefined (no driver, no device). */
function discreteGpu(): string | undefined {
  if (!existsSync("/dev/nvidiactl")) return undefined;
  const out = spawnSync("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader"], { encoding: "utf8", timeout: 10_000 });
  return out.status === 0 && out.stdout.trim() ? out.stdout.trim().split("\n")[0] : undefined;
}

/** The plan's model budget: "about 5 GB of the 8 GB usable for models" on a Jetson Orin Nano. */
export const PLAN_BUDGET_BYTES = 5 * 1024 ** 3;

/**
 * The one factor every model size, budget and context is multiplied by (see scenarios.ts), and why.
 * - It never exceeds what the box's memory holds: the plan's 5 GiB budget plus 1.5 GiB for the
 *   system, of MemAvailable.
 * - CPU-only boxes decode a 4.5 GB model at a few tokens/s per core: 0.2 keeps the full report
 *   in minutes there. A box with a GPU runs the plan's sizes (1).
 * - --quick: 0.01 (5 MB "0.5B" models), seconds per test.
 */
export function chooseScale(box: Box, options: { quick: boolean; override: number | undefined }): { factor: number; why: string } {
  if (options.override !== undefined) return { factor: options.override, why: "--scale" };
  if (options.quick) return { factor: 0.01, why: "--quick" };
  const memoryFit = box.availableBytes / (PLAN_BUDGET_BYTES + 1.5 * 1024 ** 3);
  if (box.gpu !== undefined) {
    return memoryFit >= 1
      ? { factor: 1, why: `a GPU (${box.gpu}) and memory for the plan's 5 GiB budget` }
      : { factor: roundDown(memoryFit), why: `a GPU, but MemAvailable holds only ${roundDown(memoryFit)} of the plan's budget` };
  }
  const factor = Math.min(0.2, roundDown(memoryFit));
  return { factor, why: `no GPU: ${box.cores} CPU cores decode the plan's 4.5 GB model at a few tokens/s, so 0.2 keeps the report in minutes` };
}

const roundDown = (value: number) => Math.max(0.01, Math.floor(value * 100) / 100);
