import { readFileSync } from "node:fs";

/**
 * This process's resident memory: VmRSS and RssAnon from /proc/self/status (the inputs of
 * measureLoad in load-measurement.ts). Where there is no /proc, the RSS from Node with all
 * of it taken as anonymous.
 */
export function processMemory(statusText: string | undefined = readStatus()): { rssBytes: number; anonymousRssBytes: number } {
  const field = (name: string): number | undefined => {
    const match = statusText === undefined ? null : new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(statusText);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const rssBytes = field("VmRSS");
  if (rssBytes === undefined) {
    const rss = process.memoryUsage.rss();
    return { rssBytes: rss, anonymousRssBytes: rss };
  }
  return { rssBytes, anonymousRssBytes: field("RssAnon") ?? rssBytes };
}

function readStatus(): string | undefined {
  try {
    return readFileSync("/proc/self/status", "utf8");
  } catch {
    return undefined;
  }
}
