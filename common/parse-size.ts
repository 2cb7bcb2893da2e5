// Decimal units are powers of 1000, binary units powers of 1024 (MB = 1e6, MiB = 2^20).
const UNIT_BYTES: ReadonlyMap<string, bigint> = new Map([
  ["B", 1n],
  ["kB", 1000n],
  ["KB", 1000n],
  ["MB", 1000n ** 2n],
  ["GB", 1000n ** 3n],
  ["TB", 1000n ** 4n],
  ["KiB", 1024n],
  ["MiB", 1024n ** 2n],
  ["GiB", 1024n ** 3n],
  ["TiB", 1024n ** 4n],
]);

const SIZE_PATTERN = /^(\d+)(?:\.(\d+))?\s*([A-Za-z]*)$/;
const EXAMPLES = `e.g. "200MB", "1.5GiB", "600MiB" or "1048576"`;
const UNIT_LIST = [...UNIT_BYTES.keys()].join(", ");

/**
 * Parses a byte size: a non-negative decimal number with an optional unit
 * (B, kB/KB, MB, GB, TB, KiB, MiB, GiB, TiB; case-sensitive). A bare number means bytes.
 * Returns a whole number of bytes; throws an Error naming the problem otherwise.
 */
export function parseSize(text: string): number {
  if (typeof text !== "string") {
    throw new Error(`Invalid size ${String(text)}: expected a string, ${EXAMPLES}`);
  }
  const match = SIZE_PATTERN.exec(text.trim());
  if (match === null) {
    throw new Error(`Invalid size "${text}": expected a non-negative number with an optional unit, ${EXAMPLES}`);
  }
  const [, wholeDigits = "", fractionDigits = "", unit = ""] = match;
  const unitBytes = UNIT_BYTES.get(unit === "" ? "B" : unit);
  if (unitBytes === undefined) {
    throw new Error(`Invalid size "${text}": unknown unit "${unit}" (use one of ${UNIT_LIST}), ${EXAMPLES}`);
  }
  const scale = 10n ** BigInt(fractionDigits.length);
  const scaledBytes = BigInt(wholeDigits + fractionDigits) * unitBytes;
  if (scaledBytes % scale !== 0n) {
    throw new Error(`Invalid size "${text}": it is not a whole number of bytes, ${EXAMPLES}`);
  }
  const bytes = scaledBytes / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`Invalid size "${text}": larger than ${Number.MAX_SAFE_INTEGER} bytes, ${EXAMPLES}`);
  }
  return Number(bytes);
}
