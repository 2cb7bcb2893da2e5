import { failedPrecondition } from "../../common/errors.js";
import { formatBytes } from "../../common/format-bytes.js";
import { footprint, gpuFootprint, type ModelRecord, type RunnerRecord } from "./records.js";

/**
 * What the budgets are charged with. `budget` (host memory): every runner's own memory (RSS
 * with no model, retained heap included) plus the footprint of each model a runner holds,
 * loads or unloads. Reads the core's records; owns only what it learned about a fresh
 * runner's size.
 *
 * Two dimensions when `gpu_budget` is set (a discrete GPU): a model's GPU part (VRAM,
 * measured per load, estimated before) is charged to `gpuBudgetBytes` and only the rest to
 * `budgetBytes`; a load must fit both. Without it (no GPU budget, or unified memory, where
 * the GPU's allocations come out of the same DRAM) a model's whole footprint is charged to
 * `budgetBytes` once and the GPU figures are all 0.
 */
export class MemoryLedger {
  private learnedRunnerBaseBytes: number | undefined;

  constructor(
    readonly budgetBytes: number,
    /** `gpu_budget` in bytes on a discrete GPU; undefined = GPU memory not budgeted. */
    readonly gpuBudgetBytes: number | undefined,
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

  /** Host bytes charged to `budget` for one replica of a model. */
  modelBytes(name: string): number {
    return this.accountedBytes(this.models.get(name)!);
  }

  /**
   * Host bytes charged against the budget for one replica (the GPU's part left out when it
   * has a budget of its own); an overcommitted model may charge less than it maps.
   */
  accountedBytes(model: ModelRecord): number {
    const bytes = this.hostFootprint(model) ?? 0;
    if (!model.catalog.config.allowOvercommit) return bytes;
    return Math.min(bytes, Math.max(0, this.budgetBytes - this.runnerBaseBytes()));
  }

  // ---- the GPU's budget (discrete GPU with gpu_budget; all 0 / unlimited otherwise) ----

  /** GPU bytes charged to `gpu_budget` for one replica (0 when GPU memory is not budgeted). */
  accountedGpuBytes(model: ModelRecord): number {
    return this.gpuBudgetBytes === undefined ? 0 : gpuFootprint(model);
  }

  modelGpuBytes(name: string): number {
    return this.accountedGpuBytes(this.models.get(name)!);
  }

  /** GPU bytes held or reserved by models loading, ready or unloading. */
  committedGpuBytes(): number {
    let total = 0;
    for (const runner of this.runners.values()) for (const hosted of runner.hosted.values()) total += this.modelGpuBytes(hosted.model);
    return total;
  }

  /** GPU bytes that unloads and stops in progress will give back. */
  gpuBytesBeingFreed(): number {
    let total = 0;
    for (const runner of this.runners.values()) {
      for (const hosted of runner.hosted.values()) if (runner.state === "stopping" || hosted.state === "unloading") total += this.modelGpuBytes(hosted.model);
    }
    return total;
  }

  /** GPU bytes left under `gpu_budget`; unlimited when GPU memory is not budgeted. */
  freeGpuBytes(): number {
    return this.gpuBudgetBytes === undefined ? Number.POSITIVE_INFINITY : this.gpuBudgetBytes - this.committedGpuBytes();
  }

  /** Why `model` can never fit, whatever is evicted; undefined when it can. */
  tooBigError(model: ModelRecord) {
    const name = model.catalog.config.name;
    const gpuBytes = this.accountedGpuBytes(model);
    if (this.gpuBudgetBytes !== undefined && gpuBytes > this.gpuBudgetBytes) {
      const layers = model.catalog.config.gpuLayers;
      return failedPrecondition(
        `model "${name}" needs about ${formatBytes(gpuBytes)} of GPU memory with gpu_layers: ${layers === "auto" ? "auto (all layers)" : layers} ` +
          `but gpu_budget is ${formatBytes(this.gpuBudgetBytes)}; lower gpu_layers on the model (the other layers run from host memory, under budget) or raise gpu_budget`,
      );
    }
    const bytes = this.hostFootprint(model);
    const usable = this.budgetBytes - this.runnerBaseBytes();
    if (bytes === undefined || bytes <= usable || model.catalog.config.allowOvercommit) return undefined;
    const what = this.gpuBudgetBytes === undefined ? "" : " of host memory (besides what it takes on the GPU)";
    return failedPrecondition(
      `model "${name}" needs about ${formatBytes(bytes)}${what} but the memory budget is ${formatBytes(this.budgetBytes)} ` +
        `(${formatBytes(usable)} usable after a runner's own ${formatBytes(this.runnerBaseBytes())}); raise budget, pick a smaller quantisation, ` +
        `or set allow_overcommit: true on the model to serve it from mmap and swap`,
    );
  }

  /** A model's footprint less the GPU's part when that part has its own budget. */
  private hostFootprint(model: ModelRecord): number | undefined {
    const bytes = footprint(model);
    if (bytes === undefined || this.gpuBudgetBytes === undefined) return bytes;
    return bytes - gpuFootprint(model);
  }
}
