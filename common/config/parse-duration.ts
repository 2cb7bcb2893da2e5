const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "250ms", "30s", "10m", "1h" or a number of milliseconds. Returns undefined when malformed. */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}
