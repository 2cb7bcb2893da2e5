import { failedPrecondition } from "../../common/errors.js";
import { formatBytes } from "../../common/format-bytes.js";
import { footprint, type ModelRecord, type RunnerRecord } from "./records.js";

/**
 * What the budget is charged with: every runner's own memory (RSS with no model) plus
 * the footprint of each model a runner holds or loads. Reads the core's records; owns
 * only what it learned about runners' own size.
 */
export class MemoryLedger {
  private learnedRunnerBaseBytes: number | undefined;

  constructor(
    readonly budgetBytes: number,
    private readonly runnerBaseBytesGuess: number,
    private readonly runners: ReadonlyMap<string, RunnerRecord>,
    private readonly models: ReadonlyMap<string, ModelRecord>,
  ) {}

  /** A runner reported its RSS with no model loaded. */
  learnRunnerBase(bytes: number): void {
    this.learnedRunnerBaseBytes = bytes;
  }

  /** Bytes in use or reserved: every runner's base plus the models they hold or load. */
  committedBytes(): number {
    let total = this.runnerOverheadBytes();
    for (const runner of this.runners.values()) if (runner.model) total += this.accountedBytes(this.models.get(runner.model)!);
    return total;
  }

  runnerOverheadBytes(): number {
    let total = 0;
    for (const runner of this.runners.values()) total += runner.registered ? runner.baseBytes : this.runnerBaseBytes();
    return total;
  }

  /** Bytes that unloads and stops in progress will give back. */
  bytesBeingFreed(): number {
    let total = 0;
    for (const runner of this.runners.values()) {
      if (runner.state === "unloading" && runner.model) total += this.accountedBytes(this.models.get(runner.model)!);
      if (runner.state === "stopping") total += runner.baseBytes + (runner.model ? this.accountedBytes(this.models.get(runner.model)!) : 0);
    }
    return total;
  }

  runnerBaseBytes(): number {
    return this.learnedRunnerBaseBytes ?? this.runnerBaseBytesGuess;
  }

  /** Bytes charged against the budget for one replica; an overcommitted model may charge less than it maps. */
  accountedBytes(model: ModelRecord): number {
    const bytes = footprint(model) ?? 0;
    if (!model.catalog.config.allowOvercommit) return bytes;
    return Math.min(bytes, Math.max(0, this.budgetBytes - this.runnerBaseBytes()));
  }

  tooBigError(model: ModelRecord) {
    const bytes = footprint(model);
    const usable = this.budgetBytes - this.runnerBaseBytes();
    if (bytes === undefined || bytes <= usable || model.catalog.config.allowOvercommit) return undefined;
    return failedPrecondition(
      `model "${model.catalog.config.name}" needs about ${formatBytes(bytes)} but the memory budget is ${formatBytes(this.budgetBytes)} ` +
        `(${formatBytes(usable)} usable after a runner's own ${formatBytes(this.runnerBaseBytes())}); raise budget, pick a smaller quantisation, ` +
        `or set allow_overcommit: true on the model to serve it from mmap and swap`,
    );
  }
}
