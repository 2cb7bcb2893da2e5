import { statSync } from "node:fs";
import type { Logger } from "../../common/logger.js";
import type { RunnerCommand, RunnerEvent } from "../../gen/modelswap/v1/runner.js";
import type { Engine, LoadedModel } from "./engine.js";
import { measureLoad } from "./load-measurement.js";
import { processMemory } from "./process-memory.js";
import { checkGgufFile } from "./gguf-file-check.js";

export interface RunnerOptions {
  runnerId: string;
  /** host:port of this runner's data service. */
  dataAddress: () => string;
  engine: Engine;
  send: (event: RunnerEvent) => void;
  exit: (code: number) => void;
  logger: Logger;
  /** GPU allocations come out of the same DRAM as RSS (Jetson). */
  unifiedMemory?: boolean;
  /** RSS and its anonymous part (defaults to /proc/self/status). */
  memory?: () => { rssBytes: number; anonymousRssBytes: number };
}

/**
 * One runner process: executes placement's commands (load, unload, estimate, shutdown)
 * and reports what it did. It hosts any number of models, each with its own model and
 * context objects; placement decides which. Loads and unloads run one at a time, so that
 * the RSS a load adds is that model's alone.
 */
export class Runner {
  private readonly models = new Map<string, { loaded: LoadedModel; measuredBytes: number; gpuBytes: number }>();
  private inFlight = 0;
  private tokensGenerated = 0;
  private commands: Promise<void> = Promise.resolve();
  private readonly memory: () => { rssBytes: number; anonymousRssBytes: number };

  constructor(private readonly options: RunnerOptions) {
    this.memory = options.memory ?? (() => processMemory());
  }

  /** The loaded model of that name, if this runner holds it. */
  model(name: string): LoadedModel | undefined {
    return this.models.get(name)?.loaded;
  }

  /** Names of the models it holds (for messages). */
  modelNames(): string[] {
    return [...this.models.keys()];
  }

  streamStarted(): void {
    this.inFlight++;
  }

  streamEnded(): void {
    this.inFlight--;
  }

  tokenGenerated(): void {
    this.tokensGenerated++;
  }

  /** The first event of a control stream, with the runner's proof for the placement that proved itself. */
  hello(authProof: string): RunnerEvent {
    return {
      event: {
        $case: "ready",
        value: {
          runnerId: this.options.runnerId,
          pid: process.pid,
          address: this.options.dataAddress(),
          rssBytes: process.memoryUsage.rss(),
          hosted: [...this.models].map(([model, entry]) => ({ model, measuredBytes: entry.measuredBytes, gpuBytes: entry.gpuBytes })),
          authProof,
        },
      },
    };
  }

  heartbeat(): RunnerEvent {
    return { event: { $case: "heartbeat", value: { rssBytes: process.memoryUsage.rss(), inFlight: this.inFlight, tokensGenerated: this.tokensGenerated } } };
  }

  /** Load, unload and shutdown run strictly in arrival order; estimates run beside them (they do not wait behind a load). */
  handle(command: RunnerCommand): void {
    const c = command.command;
    if (!c) return;
    if (c.$case === "estimate") {
      void this.estimate(c.value.requestId, c.value.path, c.value.contextSize, c.value.sequences, c.value.gpuLayers);
      return;
    }
    this.commands = this.commands.then(async () => {
      switch (c.$case) {
        case "load":
          return this.load(c.value);
        case "unload":
          return this.unload(c.value.model);
        case "shutdown":
          return this.shutdown();
      }
    }).catch((error: unknown) => this.options.logger.error("command_failed", { command: c.$case, error }));
  }

  private async load(spec: Extract<NonNullable<RunnerCommand["command"]>, { $case: "load" }>["value"]): Promise<void> {
    const { send, engine, logger } = this.options;
    if (this.models.has(spec.model)) await this.unload(spec.model);
    const before = this.memory();
    const started = performance.now();
    let reportedProgress = 0;
    try {
      await checkGgufFile(spec.path);
      const loaded = await engine.load(
        {
          model: spec.model,
          path: spec.path,
          contextSize: spec.contextSize,
          sequences: spec.sequences,
          threads: spec.threads,
          gpu: spec.gpu,
          warmUp: spec.warmUp,
          useMmap: spec.useMmap,
          gpuLayers: spec.gpuLayers < 0 ? "auto" : spec.gpuLayers,
        },
        (progress) => {
          // Report in steps of 10%: progress is for people, not a per-tensor trace.
          if (progress < 1 && progress - reportedProgress < 0.1) return;
          reportedProgress = progress;
          send({ event: { $case: "progress", value: { model: spec.model, progress } } });
        },
      );
      const after = this.memory();
      const rssAfter = after.rssBytes;
      // RSS growth plus what the load took on the GPU, each byte once (on a Jetson the device
      // figure is the shared pool, which already includes the anonymous RSS growth).
      const fileBytes = fileSize(spec.path);
      const measured = measureLoad({ ...before, deviceUsedBytes: 0 }, { ...after, deviceUsedBytes: loaded.deviceBytes }, this.options.unifiedMemory ?? false, loaded.weightsMapped ? fileBytes : 0);
      const measuredBytes = measured.chargedBytes + measured.gpuChargedBytes;
      this.models.set(spec.model, { loaded, measuredBytes, gpuBytes: measured.deviceBytes });
      const loadMs = performance.now() - started;
      logger.info("model_loaded", { model: spec.model, loadMs, measuredBytes, models: this.models.size });
      send({
        event: {
          $case: "loaded",
          value: {
            model: spec.model,
            measuredBytes,
            rssBytes: rssAfter,
            loadMs,
            modelLoadMs: loaded.timings.modelLoadMs,
            contextMs: loaded.timings.contextMs,
            warmUpMs: loaded.timings.warmUpMs,
            fileBytes,
            gpuBytes: measured.deviceBytes,
            backend: loaded.backend,
            gpuLayers: loaded.gpuLayers,
          },
        },
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      logger.warn("model_load_failed", { model: spec.model, reason });
      send({ event: { $case: "failed", value: { model: spec.model, reason } } });
    }
  }

  private async unload(modelName: string): Promise<void> {
    const rssBeforeBytes = process.memoryUsage.rss();
    const entry = this.models.get(modelName);
    if (entry) {
      this.models.delete(modelName);
      await entry.loaded.dispose();
    }
    this.options.send({ event: { $case: "unloaded", value: { model: modelName, rssBytes: process.memoryUsage.rss(), rssBeforeBytes } } });
  }

  private async estimate(requestId: string, path: string, contextSize: number, sequences: number, gpuLayers: number): Promise<void> {
    try {
      await checkGgufFile(path);
      const { bytes, gpuBytes } = await this.options.engine.estimate(path, contextSize, sequences, gpuLayers);
      this.options.send({ event: { $case: "estimate", value: { requestId, bytes: Math.round(bytes), gpuBytes: Math.round(gpuBytes), error: "" } } });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.options.send({ event: { $case: "estimate", value: { requestId, bytes: 0, gpuBytes: 0, error: message } } });
    }
  }

  private async shutdown(): Promise<void> {
    const entries = [...this.models.values()];
    this.models.clear();
    await Promise.all(entries.map((entry) => entry.loaded.dispose()));
    this.options.exit(0);
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
