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
