import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Logger } from "../common/logger.js";
import { stopChildren } from "../common/stop-children.js";

/** The line `modelswap placement` prints once it serves: this prefix, then its address. */
export const READY_PREFIX = "modelswap-placement-ready ";

/** Restart delays: doubling from the first to the last; back to the first after a long enough run. */
const FIRST_DELAY_MS = 250;
const LAST_DELAY_MS = 8000;
const STABLE_AFTER_MS = 30_000;

export interface PlacementSupervisorOptions {
  /** `node` arguments of `modelswap placement ...` (the supervisor adds --listen on restarts). */
  args: string[];
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Lines placement printed that are not its ready line. */
  onOutput: (line: string) => void;
  /** Each time placement (re)starts serving. */
  onReady: (address: string, pid: number, restarts: number) => void;
  /** How long `stop` waits after SIGTERM before SIGKILL (placement itself gives runners 3 s). */
  stopTimeoutMs?: number;
}

/**
 * `serve`'s placement process, kept running: when it exits without being asked, it is
 * started again (with backoff) on the address the first one bound, so the gateway's
 * client reconnects and surviving runners re-register there (their models are adopted,
 * not reloaded). Placement gets a pipe on stdin and ends when it closes, so it does not
 * outlive `serve` even after a kill -9.
 */
export class PlacementSupervisor {
  private child: ChildProcess | undefined;
  private address: string | undefined;
  private stopping = false;
  private restarts = 0;
  private delayMs = FIRST_DELAY_MS;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PlacementSupervisorOptions) {}

  /** Starts placement; resolves with its address once it serves, rejects if the first start fails. */
  start(): Promise<string> {
    return new Promise((resolve, reject) => this.launch(resolve, reject));
  }

  /**
   * Ends placement (and through it the runners) and waits for it: SIGTERM, then SIGKILL if it
   * has not exited after stopTimeoutMs (its runners then end after their reconnect grace).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.child) await stopChildren([this.child], this.options.stopTimeoutMs ?? 10_000);
  }

  private launch(onFirstReady?: (address: string) => void, onFirstFailure?: (error: Error) => void): void {
    const args = this.address ? [...this.options.args, "--listen", this.address] : this.options.args;
    const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"], env: this.options.env });
    this.child = child;
    let readyAtMs: number | undefined;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith(READY_PREFIX)) return this.options.onOutput(line);
      readyAtMs = Date.now();
      this.address ??= line.slice(READY_PREFIX.length);
      this.options.onReady(this.address, child.pid!, this.restarts);
      onFirstReady?.(this.address);
    });
    child.once("exit", (code, signal) => {
      if (this.stopping) return;
      if (!this.address) return onFirstFailure?.(new Error(`placement exited with code ${code} before it was ready`));
      if (readyAtMs !== undefined && Date.now() - readyAtMs >= STABLE_AFTER_MS) this.delayMs = FIRST_DELAY_MS;
      this.options.logger.error("placement_exited", { code, signal, restartInMs: this.delayMs });
      this.timer = setTimeout(() => {
        this.restarts++;
        this.launch();
      }, this.delayMs);
      this.delayMs = Math.min(LAST_DELAY_MS, this.delayMs * 2);
    });
  }
}
