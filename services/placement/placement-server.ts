import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import type { Config } from "../../common/config/config-types.js";
import { HealthStatus } from "../../common/grpc/health.js";
import { reflectionBindings } from "../../common/grpc/reflection.js";
import { startServer, type StartedServer } from "../../common/grpc/start-server.js";
import { PlacementMetrics } from "../../common/telemetry/placement-metrics.js";
import { PlacementTracing } from "../../common/telemetry/placement-tracing.js";
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

  // Telemetry around the core: spans for acquires and swaps, Prometheus metrics (no-ops without the SDK).
  const prefetchedFiles = new Set<string>();
  const metrics = new PlacementMetrics(() => core.status());
  const tracing = new PlacementTracing({
    metrics,
    fileBytes: (file) => statOrZero(file).size,
    loadSource: (file) => (prefetchedFiles.delete(file) ? "page_cache" : "unknown"),
  });
  let markReadyIfSettled = () => {};
  const grpc = new PlacementGrpc(logger, clock, {
    onEvent: (event) => {
      logger.info(`residency_${event.kind}`, { model: event.model, reason: event.reason, bytes: event.bytes, runnerId: event.runnerId, queueDepth: event.queueDepth });
      tracing.event(event);
      markReadyIfSettled();
      options.onEvent?.(event);
    },
    onRunnerEvent: (runnerId, event) => {
      tracing.runnerEvent(runnerId, event);
      options.onRunnerEvent?.(runnerId, event);
    },
    onAcquire: (waiterId, call) => {
      let model = call.request.model;
      try {
        model = core.resolve(model);
      } catch {
        // unknown model: the core refuses it next, and onAcquireEnd ends the span
      }
      tracing.acquireStarted(waiterId, call.metadata, call.request.model, model);
    },
    onAcquireEnd: (waiterId, outcome, error) => tracing.ended(waiterId, outcome, error),
  });
  const calls = grpc.callEffects();
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
    ...calls,
    sendToRunner: (runnerId, command) => {
      tracing.command(runnerId, command);
      calls.sendToRunner(runnerId, command);
    },
    grant: (waiterId, lease) => {
      tracing.granted(waiterId, lease);
      calls.grant(waiterId, lease);
    },
    notifyQueued: (waiterId, model, position) => {
      tracing.queued(waiterId, position);
      calls.notifyQueued(waiterId, model, position);
    },
    notifyLoading: (waiterId, model, progress) => {
      tracing.loading(waiterId);
      calls.notifyLoading(waiterId, model, progress);
    },
    reject: (waiterId, error) => {
      tracing.ended(waiterId, "rejected", error);
      calls.reject(waiterId, error);
    },
    spawnRunner: (runnerId) => processes.spawn(runnerId),
    killRunner: (runnerId) => {
      if (!processes.kill(runnerId)) grpc.shutdownRunners([runnerId]);
    },
    prefetch: (file) => {
      const started = performance.now();
      readIntoPageCache(file, prefetches.signal).then(
        (bytes) => {
          if (!prefetches.signal.aborted) prefetchedFiles.add(file);
          logger.info("prefetched", { file, bytes, ms: Math.round(performance.now() - started) });
        },
        (error: unknown) => logger.warn("prefetch_failed", { file, error }),
      );
    },
    learned: (model, facts) => learned.set(model, facts),
  }, `r${process.pid}-${randomBytes(2).toString("hex")}-`);
  grpc.attach(core);

  const services = [grpc.placementService(), grpc.runnerControlService()];
  // grpc.health.v1: NOT_SERVING until spare runners are up and preloaded models are resident (or failed).
  const health = new HealthStatus(services);
  const preloads = config.models.filter((model) => model.preload || model.pin || model.replicas.min > 1).map((model) => model.name);
  let ready = false;
  let draining = false;
  markReadyIfSettled = () => {
    if (ready || draining) return;
    const status = core.status();
    const settled = preloads.every((name) => {
      const info = status.models.find((model) => model.info?.name === name)?.info;
      return !info || info.replicas > 0 || info.queued === 0;
    });
    const runnerUp = settings.spareRunners === 0 || status.runners.some((runner) => runner.pid > 0);
    if (!settled || !runnerUp) return;
    ready = true;
    health.setServing(true);
    logger.info("placement_ready", {});
  };
  server = await startServer(options.listen ?? config.placement.listen, [...services, health.binding(), ...reflectionBindings(services)]);
  logger.info("placement_listening", { address: server.address, budgetBytes, policy: settings.policyName });
  grpc.run(() => core.start());
  markReadyIfSettled();

  return {
    address: server.address,
    core,
    processes,
    budgetBytes,
    stop: async () => {
      core.stop();
      draining = true;
      health.setServing(false);
      prefetches.abort();
      tracing.close();
      grpc.stop();
      grpc.shutdownRunners();
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
