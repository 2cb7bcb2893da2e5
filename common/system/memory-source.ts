import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";
import type { UnifiedMemorySetting } from "../config/config-types.js";

/** One reading of the box's memory, as placement sizes its budget from it. */
export interface MemoryReadings {
  /** MemTotal: the DRAM the kernel manages. On a Jetson this is CPU and GPU memory together. */
  physicalBytes: number;
  /**
   * MemAvailable: what can be allocated without swapping (free pages plus reclaimable page
   * cache). On a Jetson, GPU allocations (cudaMalloc, served by nvmap from the same DRAM)
   * lower it although no process's RSS shows them.
   */
  availableBytes: number;
  /** CPU and GPU share this memory (Jetson): GPU allocations come out of physicalBytes. */
  unifiedMemory: boolean;
}

/** A discrete GPU's memory (all devices together), as placement sizes a `gpu_budget` percentage from it. */
export interface GpuMemoryReadings {
  totalBytes: number;
  freeBytes: number;
}

/** Where placement reads the box's memory; tests inject a fake (test/support/fake-memory-source.ts). */
export interface MemorySource {
  read(): MemoryReadings;
  /** The discrete GPU's memory; undefined when no GPU is found. Read only for a `gpu_budget` percentage. */
  readGpu(): GpuMemoryReadings | undefined;
}

/** Runs the GPU query (nvidia-smi) and returns its output; undefined when it is absent or fails. */
export type QueryGpu = () => string | undefined;

/** Reads a system file as text; undefined when it is absent or unreadable. */
export type ReadSystemFile = (path: string) => string | undefined;

export const NV_TEGRA_RELEASE = "/etc/nv_tegra_release";
export const DEVICE_TREE_MODEL = "/proc/device-tree/model";
export const PROC_MEMINFO = "/proc/meminfo";

/**
 * Whether CPU and GPU share memory. `true`/`false` (config `unified_memory`) win; `auto`
 * detects a Jetson: L4T's /etc/nv_tegra_release, or a device-tree model naming an NVIDIA
 * Jetson (the kernel's /proc, so this also works inside a container). `reason` says which,
 * for the startup log.
 */
export function detectUnifiedMemory(setting: UnifiedMemorySetting, readSystemFile: ReadSystemFile): { unifiedMemory: boolean; reason: string } {
  if (setting !== "auto") return { unifiedMemory: setting, reason: `unified_memory: ${setting} in the config` };
  if (readSystemFile(NV_TEGRA_RELEASE) !== undefined) return { unifiedMemory: true, reason: `${NV_TEGRA_RELEASE} exists (NVIDIA L4T)` };
  // The device tree's strings end in NUL.
  const model = readSystemFile(DEVICE_TREE_MODEL)?.replace(/\0/g, "").trim();
  if (model !== undefined && /NVIDIA Jetson/i.test(model)) return { unifiedMemory: true, reason: `${DEVICE_TREE_MODEL} is "${model}"` };
  return { unifiedMemory: false, reason: "no NVIDIA Jetson found (unified_memory: true overrides)" };
}

/** MemTotal and MemAvailable from /proc/meminfo text; undefined when MemTotal is missing. */
export function parseMeminfo(text: string): { physicalBytes: number; availableBytes: number } | undefined {
  const field = (name: string): number | undefined => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const physicalBytes = field("MemTotal");
  if (physicalBytes === undefined) return undefined;
  // Kernels before 3.14 have no MemAvailable: free plus page cache is its usual stand-in.
  const availableBytes = field("MemAvailable") ?? (field("MemFree") ?? 0) + (field("Buffers") ?? 0) + (field("Cached") ?? 0);
  return { physicalBytes, availableBytes };
}

/**
 * Total and free memory of every GPU in `nvidia-smi --query-gpu=memory.total,memory.free
 * --format=csv,noheader,nounits` output (one "total, free" line per GPU, in MiB), summed:
 * llama.cpp spreads layers over all of them. Undefined when no line parses.
 */
export function parseNvidiaSmiMemory(text: string): GpuMemoryReadings | undefined {
  const MiB = 1024 * 1024;
  let totalBytes = 0;
  let freeBytes = 0;
  let gpus = 0;
  for (const line of text.split("\n")) {
    const match = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(line);
    if (!match) continue;
    totalBytes += Number(match[1]) * MiB;
    freeBytes += Number(match[2]) * MiB;
    gpus++;
  }
  return gpus > 0 ? { totalBytes, freeBytes } : undefined;
}

/**
 * The real source: /proc/meminfo on each read (os.totalmem/freemem where there is none),
 * unified memory decided once from `setting` and the system files; the GPU's memory from
 * nvidia-smi (placement does not load a GPU backend itself).
 */
export function procMemorySource(
  setting: UnifiedMemorySetting = "auto",
  readSystemFile: ReadSystemFile = readIfPresent,
  queryGpu: QueryGpu = queryNvidiaSmi,
): MemorySource & { readonly unifiedReason: string } {
  const { unifiedMemory, reason } = detectUnifiedMemory(setting, readSystemFile);
  return {
    unifiedReason: reason,
    read(): MemoryReadings {
      const meminfo = readSystemFile(PROC_MEMINFO);
      const parsed = meminfo === undefined ? undefined : parseMeminfo(meminfo);
      return { ...(parsed ?? { physicalBytes: totalmem(), availableBytes: freemem() }), unifiedMemory };
    },
    readGpu(): GpuMemoryReadings | undefined {
      const output = queryGpu();
      return output === undefined ? undefined : parseNvidiaSmiMemory(output);
    },
  };
}

function queryNvidiaSmi(): string | undefined {
  try {
    return execFileSync("nvidia-smi", ["--query-gpu=memory.total,memory.free", "--format=csv,noheader,nounits"], {
      encoding: "utf8",
      timeout: 10_000,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return undefined;
  }
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
