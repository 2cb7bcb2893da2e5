import { failedPrecondition } from "../../common/errors.js";
import { formatBytes } from "../../common/format-bytes.js";
import { footprint, type ModelRecord, type RunnerRecord } from "./records.js";

/**
 * What the budget is charged with: every runner's own memory (RSS with no model, retained
 * heap included) plus the footprint of each model a runner holds, loads or unloads. Reads
 * the core's records; owns only what it learned about a fresh runner's size.
 */
export class MemoryLedger {
  private learnedRunnerBaseBytes: number | undefined;

  constructor(
    readonly budgetBytes: number,
    private readonly runnerBaseBytesGuess: number,
    private readonly runners: ReadonlyMap<string, RunnerRecord>,
    private readonly models: ReadonlyMap<string, ModelRecord>,
  ) {}

  /** A fresh runner reported its RSS with no model loaded. */
  learnRunnerBase(bytes: number): void {
    this.learnedRunnerBaseBytes = bytes;
  }

  /** What a runner process costs before any model: learned from the last fresh runner. */
  runnerBaseBytes(): number {
    return this.learnedRunnerBaseBytes ?? this.runnerBaseBytesGuess;
  }

  /** Bytes in use or reserved: every runner's base plus the models they hold or load. */
  committedBytes(): number {
    let total = 0;
    for (const runner of this.runners.values()) total += this.runnerBytes(runner);
    return total;
  }

  /** One runner's charge: its own base plus each hosted model. */
  runnerBytes(runner: RunnerRecord): number {
    let total = runner.registered ? runner.baseBytes : this.runnerBaseBytes();
    for (const hosted of runner.hosted.values()) total += this.modelBytes(hosted.model);
    return total;
  }

  /** Bytes that unloads and stops in progress will give back. */
  bytesBeingFreed(): number {
    let total = 0;
    for (const runner of this.runners.values()) {
      if (runner.state === "stopping") {
        total += this.runnerBytes(runner);
        continue;
      }
      for (const hosted of runner.hosted.values()) if (hosted.state === "unloading") total += this.modelBytes(hosted.model);
    }
    return total;
  }

  freeBytes(): number {
    return this.budgetBytes - this.committedBytes();
  }

  modelBytes(name: string): number {
    return this.accountedBytes(this.models.get(name)!);
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
