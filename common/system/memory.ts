import { readFileSync } from "node:fs";
import { freemem } from "node:os";

/** MemAvailable from /proc/meminfo (free memory elsewhere), in bytes. */
export function availableMemoryBytes(): number {
  try {
    const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux
  }
  return freemem();
}
