import { statSync } from "node:fs";
import type { Config } from "../../common/config/config-types.js";
import { startServer, type StartedServer } from "../../common/grpc/start-server.js";
import type { Logger } from "../../common/logger.js";
import { availableMemoryBytes } from "../../common/system/memory.js";
import type { ResidencyEvent } from "../../gen/modelswap/v1/admin.js";
import type { RunnerEvent } from "../../gen/modelswap/v1/runner.js";
import { LearnedState } from "./learned-state.js";
import { readIntoPageCache } from "./page-cache.js";
import { PlacementCore } from "./placement-core.js";
import { PlacementGrpc } from "./placement-service.js";
import type { CatalogModel, PlacementSettings } from "./placement-types.js";
import { RunnerProcesses } from "./runner-processes.js";

export interface PlacementServerOptions {
  config: Config;
  logger: Logger;
  /** Overrides config.placement.listen (tests use port 0). */
  listen?: string;
  runnerEnv?: NodeJS.ProcessEnv;
  onEvent?: (event: ResidencyEvent) => void;
  onRunnerEvent?: (runnerId: string, event: RunnerEvent) => void;
}

export interface RunningPlacement {
  address: string;
  core: PlacementCore;
  processes: RunnerProcesses;
  budgetBytes: number;
  stop(): Promise<void>;
}

/** Boots placement: its gRPC server, the core state machine, and runner processes. */
export async function startPlacement(options: PlacementServerOptions): Promise<RunningPlacement> {
  const { config, logger } = options;
  const clock = { now: () => Date.now() };
  const budgetBytes = config.budget.kind === "bytes" ? config.budget.bytes : Math.floor(availableMemoryBytes() * config.budget.fraction);
  const learned = new LearnedState(config.placement.stateFile);
  const catalog: CatalogModel[] = config.models.map((model) => {
    const stat = statOrZero(model.path);
    return { config: model, fileBytes: stat.size, fileMtimeMs: stat.mtimeMs, learned: learned.get(model.name) };
  });
  const settings: PlacementSettings = {
    budgetBytes,
    policyName: config.placement.evictionPolicy,
    spareRunners: config.placement.spareRunners,
    queueMax: config.placement.queueMax,
    queueTimeoutMs: config.placement.queueTimeoutMs,
    minResidencyMs: config.placement.minResidencyMs,
    fairnessMs: config.placement.fairnessMs,
    prefetch: config.placement.prefetch,
    runnerBaseBytesGuess: 96 * 1024 * 1024,
    maxLoadAttempts: 3,
  };

  const grpc = new PlacementGrpc(logger, clock, { onEvent: options.onEvent, onRunnerEvent: options.onRunnerEvent });
  let server: StartedServer | undefined;
  const processes = new RunnerProcesses({
    placementAddress: () => server!.address,
    gpu: config.models[0]?.gpu ?? "auto",
    logger,
    env: options.runnerEnv,
    onExit: (runnerId, code) => grpc.run(() => core.runnerExited(runnerId, code)),
  });
  const prefetches = new AbortController();
  const core = new PlacementCore(catalog, settings, clock, {
    ...grpc.callEffects(),
    spawnRunner: (runnerId) => processes.spawn(runnerId),
    killRunner: (runnerId) => processes.kill(runnerId),
    prefetch: (file) => {
      const started = performance.now();
      readIntoPageCache(file, prefetches.signal).then(
        (bytes) => logger.info("prefetched", { file, bytes, ms: Math.round(performance.now() - started) }),
        (error: unknown) => logger.warn("prefetch_failed", { file, error }),
      );
    },
    learned: (model, facts) => learned.set(model, facts),
  }, `r${process.pid}-`);
  grpc.attach(core);

  server = await startServer(options.listen ?? config.placement.listen, [grpc.placementService(), grpc.runnerControlService()]);
  logger.info("placement_listening", { address: server.address, budgetBytes, policy: settings.policyName });
  grpc.run(() => core.start());

  return {
    address: server.address,
    core,
    processes,
    budgetBytes,
    stop: async () => {
      prefetches.abort();
      grpc.stop();
      await processes.stopAll();
      await server!.shutdown(500);
    },
  };
}

function statOrZero(file: string): { size: number; mtimeMs: number } {
  try {
    const stat = statSync(file);
    return { size: stat.size, mtimeMs: stat.mtimeMs };
  } catch {
    return { size: 0, mtimeMs: 0 };
  }
}
