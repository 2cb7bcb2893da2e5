const GiB = 1024 ** 3;
/** A load or an unload that took longer than this is not a measurement of one. */
const LONGEST_PLAUSIBLE_MS = 24 * 3600_000;

/**
 * Figures runners report (RSS, measured and estimated bytes, load times, progress),
 * checked before they enter the ledger, the eviction policy or `state_file`. Each check
 * returns why the figure is refused, or undefined when it is plausible. Pure.
 *
 * Bounds: bytes are finite non-negative safe integers. A process's RSS is at most the
 * box's physical memory. A model's measured footprint is at most twice what it was
 * expected to take (its estimate, else its file) plus 1 GiB (a first GPU load also
 * measures the CUDA context). An estimate is at most twice the file plus four times the
 * box's memory (KV caches grow with the context, and overcommitted models map more than
 * RAM). The GPU's part of a footprint is within it. Durations are finite, non-negative and under a day; progress is within 0..1.
 */
export const reportChecks = {
  /** A count of bytes (download progress and the like). */
  bytes: notBytes,

  rss(bytes: number, physicalBytes: number): string | undefined {
    return notBytes(bytes) ?? (bytes > physicalBytes ? `RSS ${bytes} is more than the box's physical memory (${physicalBytes})` : undefined);
  },

  measured(bytes: number, expected: { estimatedBytes: number | undefined; fileBytes: number }): string | undefined {
    const ceiling = 2 * Math.max(expected.estimatedBytes ?? 0, expected.fileBytes) + GiB;
    return notBytes(bytes) ?? (bytes > ceiling ? `measured ${bytes} bytes, more than 2 x expected + 1 GiB (${ceiling})` : undefined);
  },

  estimate(bytes: number, model: { fileBytes: number }, physicalBytes: number): string | undefined {
    const ceiling = 2 * model.fileBytes + 4 * physicalBytes;
    return notBytes(bytes) ?? (bytes > ceiling ? `estimated ${bytes} bytes, more than 2 x the file + 4 x physical memory (${ceiling})` : undefined);
  },

  /** The GPU's part of a measured or estimated footprint: a byte count within the whole. */
  gpuPart(gpuBytes: number, totalBytes: number): string | undefined {
    return notBytes(gpuBytes) ?? (gpuBytes > totalBytes ? `GPU part of ${gpuBytes} bytes is more than the whole footprint (${totalBytes})` : undefined);
  },

  durationMs(ms: number): string | undefined {
    return Number.isFinite(ms) && ms >= 0 && ms <= LONGEST_PLAUSIBLE_MS ? undefined : `a duration of ${ms} ms`;
  },

  progress(fraction: number): string | undefined {
    return Number.isFinite(fraction) && fraction >= 0 && fraction <= 1 ? undefined : `progress ${fraction}`;
  },
};

function notBytes(bytes: number): string | undefined {
  return Number.isSafeInteger(bytes) && bytes >= 0 ? undefined : `${bytes} is not a byte count`;
}
