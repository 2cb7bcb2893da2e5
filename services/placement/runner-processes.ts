import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { INTERNAL_SECRET_ENV, RUNNER_KEY_ENV } from "../../common/internal-auth/internal-env.js";
import type { RunnerKey } from "../../common/internal-auth/runner-key.js";
import type { Logger } from "../../common/logger.js";
import { stopChildren } from "../../common/stop-children.js";

const RUNNER_MAIN = fileURLToPath(new URL("../runner/main.js", import.meta.url));

/**
 * glibc raises its mmap threshold after large frees, after which model-sized buffers come
 * from the heap and stay in RSS after an unload. A fixed threshold keeps them mmapped, so
 * unloading a model really returns its memory. Measured with 100/150 MB models swapped in
 * one runner (steady-state load of the 150 MB model in brackets): no tuning, RSS after
 * unload grew 159 -> 253 MB over 7 swaps (130-149 ms); 256 KiB, 130 MB flat (183-194 ms);
 * 1 MiB, 135 MB flat (167-180 ms); 4 MiB, 148 MB flat (145-156 ms). Page faults on fresh
 * mappings are the price; 1 MiB keeps most of the memory for part of it.
 */
const RUNNER_MALLOC_TUNING = { GLIBC_TUNABLES: "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=1048576" };

/**
 * V8's young generation, kept small: a runner's JavaScript allocates little per token, and
 * the default semi-spaces hold memory no model can use. Measured on the 2-core box, a
 * runner with no model (three starts each): 105-129 MB RSS by default, 96-101 MB with 2 MiB.
 */
const RUNNER_NODE_FLAGS = ["--max-semi-space-size=2"];

export interface RunnerProcessOptions {
  gpu: string;
  /** CPU and GPU share the DRAM (Jetson): runners measure a load as one figure. */
  unifiedMemory: boolean;
  logger: Logger;
  /** Extra environment for runners (e.g. telemetry settings). */
  env?: NodeJS.ProcessEnv;
  /** Where runners listen for token streams (host:0); default loopback. Other boxes' gateways must reach it. */
  listen?: string;
}

/** Starts and ends runner OS processes; knows nothing about models. */
export class RunnerProcesses {
  private readonly children = new Map<string, ChildProcess>();
  private readonly exitListeners: ((runnerId: string, code: number | null) => void)[] = [];

  constructor(private readonly options: RunnerProcessOptions) {}

  /** Calls `listener` when a runner this placement started exits. */
  onExit(listener: (runnerId: string, code: number | null) => void): void {
    this.exitListeners.push(listener);
  }

  /**
   * Starts a runner that dials placement at `placementAddress`. Its key travels in its
   * environment (readable by its own user only), not its argv (/proc/PID/cmdline is
   * world-readable); the internal secret itself is never passed on.
   */
  spawn(runnerId: string, placementAddress: string, key: RunnerKey): void {
    const env: NodeJS.ProcessEnv = { ...process.env, ...RUNNER_MALLOC_TUNING, ...this.options.env, [RUNNER_KEY_ENV]: key.toText() };
    delete env[INTERNAL_SECRET_ENV];
    const child = spawn(process.execPath, [...RUNNER_NODE_FLAGS, RUNNER_MAIN, "--id", runnerId, "--placement", placementAddress, "--gpu", this.options.gpu, ...(this.options.unifiedMemory ? ["--unified-memory"] : []), ...(this.options.listen ? ["--listen", this.options.listen] : [])], {
      stdio: ["ignore", "inherit", "inherit"],
      env,
    });
    this.children.set(runnerId, child);
    child.once("exit", (code, signal) => {
      this.children.delete(runnerId);
      this.options.logger.info("runner_exit", { runnerId, code, signal });
      for (const listener of this.exitListeners) listener(runnerId, code);
    });
    child.once("error", (error) => this.options.logger.error("runner_spawn_failed", { runnerId, error }));
  }

  /** False when the runner is not a child of this process (adopted after a placement restart). */
  kill(runnerId: string, signal: NodeJS.Signals = "SIGKILL"): boolean {
    const child = this.children.get(runnerId);
    child?.kill(signal);
    return child !== undefined;
  }

  /** Ends every runner this placement started and waits for them to exit. */
  async stopAll(timeoutMs = 3000): Promise<void> {
    await stopChildren(this.children.values(), timeoutMs);
  }
}
