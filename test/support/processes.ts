import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { projectRoot } from "./paths.js";

export const CLI_MAIN = path.join(projectRoot, "dist", "cli", "main.js");
export const RUNNER_MAIN = path.join(projectRoot, "dist", "services", "runner", "main.js");

/** A child process whose stdout and stderr lines are kept and can be waited for. */
export interface WatchedProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /**
   * Resolves with the first line (of either stream) `probe` maps to a value; rejects if the
   * process exits first, unless `afterExit` (its children may still write to its pipes).
   */
  waitForLine<T>(probe: (line: string) => T | undefined, timeoutMs?: number, afterExit?: boolean): Promise<T>;
  /** SIGTERM, then waits for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/** `command` defaults to this Node; `detached` makes the child lead its own process group (kill -PID ends it and its children). */
export function startProcess(args: string[], env: NodeJS.ProcessEnv, options: { command?: string; detached?: boolean } = {}): WatchedProcess {
  const child = spawn(options.command ?? process.execPath, args, { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"], detached: options.detached ?? false });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const probes = new Set<(line: string) => void>();
  const exitWaiters = new Set<(code: number | null) => void>();
  let exited = false;
  const feed = (sink: string[]) => (line: string) => {
    sink.push(line);
    for (const probe of [...probes]) probe(line);
  };
  createInterface({ input: child.stdout! }).on("line", feed(stdout));
  createInterface({ input: child.stderr! }).on("line", feed(stderr));
  child.once("exit", (code) => {
    exited = true;
    for (const waiter of [...exitWaiters]) waiter(code);
  });
  return {
    child,
    stdout,
    stderr,
    waitForLine<T>(probe: (line: string) => T | undefined, timeoutMs = 30_000, afterExit = false): Promise<T> {
      for (const line of [...stdout, ...stderr]) {
        const value = probe(line);
        if (value !== undefined) return Promise.resolve(value);
      }
      return new Promise<T>((resolve, reject) => {
        const done = () => {
          probes.delete(check);
          exitWaiters.delete(onExit);
          clearTimeout(timer);
        };
        const check = (line: string) => {
          const value = probe(line);
          if (value === undefined) return;
          done();
          resolve(value);
        };
        const onExit = (code: number | null) => {
          done();
          reject(new Error(`process exited (code ${code}) before the expected line; stderr tail:\n${stderr.slice(-15).join("\n")}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no expected line within ${timeoutMs} ms; stderr tail:\n${stderr.slice(-15).join("\n")}`));
        }, timeoutMs);
        probes.add(check);
        if (afterExit) return;
        if (exited) onExit(child.exitCode);
        else exitWaiters.add(onExit);
      });
    },
    stop(graceMs = 8000): Promise<void> {
      if (exited) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
        exitWaiters.add(() => {
          clearTimeout(kill);
          resolve();
        });
        child.kill("SIGTERM");
      });
    },
  };
}

/** Parses a JSON log line; undefined for anything else. */
export function jsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * A free TCP port on 127.0.0.1 whose successor is free too (port, port + 1), taken below the
 * kernel's ephemeral range: a port the probe frees inside that range may be handed to the next
 * listen(0) or outgoing connection of any process (a placement on :0 took a gateway's port so).
 */
export async function freePortPair(): Promise<number> {
  const [low, high] = belowEphemeralRange();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    const free = await Promise.all([port, port + 1].map((candidate) => listenOnce(candidate).then(() => true, () => false)));
    if (free.every(Boolean)) return port;
  }
  throw new Error("no free pair of ports found");
}

/** [first, last) ports for tests: from 10000 up to the start of ip_local_port_range. */
function belowEphemeralRange(): [number, number] {
  let ephemeralStart = 32768;
  try {
    ephemeralStart = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || ephemeralStart;
  } catch {
    // not Linux: keep the IANA-ish default
  }
  return ephemeralStart > 12000 ? [10000, ephemeralStart - 2] : [49152, 65534];
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `modelswap ARGS...` to its end, as a user in a terminal would. */
export function cli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_MAIN, ...args], { env, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? Number((error as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
