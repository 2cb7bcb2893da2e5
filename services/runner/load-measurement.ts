/**
 * What a load took, from readings of the runner before and after it, so that the ledger
 * counts every byte once.
 *
 * What each reading shows:
 * - `rssBytes` (VmRSS of the runner): the process's resident pages, anonymous and
 *   file-backed. It never shows GPU allocations: on a discrete GPU they live in VRAM, and on
 *   a Jetson cudaMalloc'd memory is served by nvmap from the DRAM without being mapped into
 *   the process as ordinary pages.
 * - `anonymousRssBytes` (RssAnon): the part of the RSS that is not file-backed. Only this
 *   part lowers MemAvailable; mapped model pages (RssFile, `use_mmap`) are page cache, which
 *   MemAvailable counts as available.
 * - `deviceUsedBytes` (node-llama-cpp's `getVramState().used`, 0 without a GPU backend):
 *   on a discrete GPU, VRAM in use on the device. On a Jetson, llama.cpp reports the
 *   integrated GPU's memory as the unified pool: total = MemTotal, free = MemAvailable, so
 *   `used` is MemTotal - MemAvailable of the whole box. Its growth over a load is this
 *   runner's anonymous RSS growth PLUS its GPU (nvmap) allocations.
 *
 * Both device figures are device- or box-wide: another process that allocates during the
 * load is counted as this load's, and one that frees during it hides part of it (never
 * below the RSS growth). Exact figures need loads that do not overlap.
 */

/** The runner's memory at one moment, before or after a load. */
export interface LoadReading {
  rssBytes: number;
  anonymousRssBytes: number;
  deviceUsedBytes: number;
}

export interface LoadMeasurement {
  /** Host memory the load took that the runner's RSS shows (weights and buffers kept on the CPU, mapped pages). */
  hostBytes: number;
  /**
   * Memory the load took for the GPU that RSS does not show: VRAM on a discrete GPU; on
   * unified memory, DRAM taken by GPU allocations (the pool's growth less the anonymous RSS
   * growth, which the pool already includes).
   */
  deviceBytes: number;
  /** Charged to `budget`: hostBytes, plus deviceBytes on unified memory (the same DRAM). */
  chargedBytes: number;
  /** Charged to `gpu_budget`: deviceBytes on a discrete GPU; 0 on unified memory (in chargedBytes). */
  gpuChargedBytes: number;
}

/**
 * `mappedBytes`: model file bytes the load mapped (use_mmap) rather than read. Their pages
 * enter the RSS only as they are first touched (by the warm-up, or by the first request when
 * a load skips the warm-up), so the host charge is at least the anonymous growth plus them.
 */
export function measureLoad(before: LoadReading, after: LoadReading, unifiedMemory: boolean, mappedBytes = 0): LoadMeasurement {
  const growth = (from: number, to: number) => Math.max(0, to - from);
  const hostBytes = Math.max(growth(before.rssBytes, after.rssBytes), growth(before.anonymousRssBytes, after.anonymousRssBytes) + mappedBytes);
  const deviceGrowth = growth(before.deviceUsedBytes, after.deviceUsedBytes);
  if (!unifiedMemory) return { hostBytes, deviceBytes: deviceGrowth, chargedBytes: hostBytes, gpuChargedBytes: deviceGrowth };
  const anonymousGrowth = Math.min(hostBytes, growth(before.anonymousRssBytes, after.anonymousRssBytes));
  const deviceBytes = Math.max(0, deviceGrowth - anonymousGrowth);
  return { hostBytes, deviceBytes, chargedBytes: hostBytes + deviceBytes, gpuChargedBytes: 0 };
}
