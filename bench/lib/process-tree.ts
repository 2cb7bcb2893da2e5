import { readdirSync, readFileSync } from "node:fs";

/** Process trees and their memory, read from /proc (Linux). */

/** Parent pid of every live process. */
function parentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // the command name (field 2) may hold spaces and parentheses: fields after the last ")"
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // ended while we looked
    }
  }
  return parents;
}

/** `root` and every live descendant of it, root first. */
export function processTree(root: number, exclude: ReadonlySet<number> = new Set()): number[] {
  const parents = parentPids();
  const children = new Map<number, number[]>();
  for (const [pid, parent] of parents) children.set(parent, [...(children.get(parent) ?? []), pid]);
  const tree: number[] = [];
  const visit = (pid: number) => {
    if (exclude.has(pid)) return;
    tree.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  if (parents.has(root)) visit(root);
  return tree;
}

/** VmRSS of one process in bytes (0 when it is gone). */
export function vmRssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Proportional set size in bytes (0 when it is gone): resident pages, each shared page divided by
 * the number of processes that map it (the node or llama-server binary and libraries of several
 * processes count once in a sum of PSS, once per process in a sum of RSS).
 */
export function pssBytes(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The command line of a process, arguments joined by spaces ("" when it is gone). */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** The short command name of a process ("" when it is gone). */
export function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Sends `signal` to every process of the tree, leaves first; ignores the ones already gone. */
export function signalTree(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of [...pids].reverse()) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export interface TreeMemory {
  rssBytes: number;
  pssBytes: number;
  /** Per kind of process: "count × name RSS MB", e.g. "1 × runner 924 MB". */
  parts: string;
  /** RSS of the processes whose name `name` gives, summed by name. */
  byName: Map<string, { count: number; rssBytes: number }>;
}

/** VmRSS and PSS of every process in `pids`, summed, and per process kind as `name(pid)` calls it. */
export function treeMemory(pids: readonly number[], name: (pid: number) => string): TreeMemory {
  const byName = new Map<string, { count: number; rssBytes: number }>();
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    const bytes = vmRssBytes(pid);
    rss += bytes;
    pss += pssBytes(pid);
    const kind = name(pid);
    const entry = byName.get(kind) ?? { count: 0, rssBytes: 0 };
    byName.set(kind, { count: entry.count + 1, rssBytes: entry.rssBytes + bytes });
  }
  const parts = [...byName].map(([kind, entry]) => `${entry.count} × ${kind} ${Math.round(entry.rssBytes / 1e6)} MB`).join(", ");
  return { rssBytes: rss, pssBytes: pss, parts, byName };
}

/** Whether a process with this pid exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
