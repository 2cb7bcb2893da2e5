import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import type { Config } from "../../common/config/config-types.js";
import { reflectionBindings } from "../../common/grpc/reflection.js";
import { startServer } from "../../common/grpc/start-server.js";
import { PlacementMetrics, registerPlacementGauges } from "../../common/telemetry/placement-metrics.js";
import { PlacementTracing, withTracing } from "../../common/telemetry/placement-tracing.js";
import type { Logger } from "../../common/logger.js";
import { procMemorySource, type MemorySource } from "../../common/system/memory-source.js";
import { resolveBudget } from "../../common/system/resolve-budget.js";
import { resolveGpuBudget } from "../../common/system/resolve-gpu-budget.js";
import type { RunnerEvent } from "../../gen/modelswap/v1/runner.js";
import { registerBox, type RegisteredBox } from "../cluster/register-box.js";
import { runnerListenAddress } from "../cluster/runner-listen-address.js";
import { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import { GatewaySessions } from "./gateway-sessions.js";
import { LearnedState } from "./learned-state.js";
import { readIntoPageCache } from "./page-cache.js";
import { CoreDriver } from "./core-driver.js";
import { PlacementCore } from "./placement-core.js";
import { PlacementHealth, withHealth } from "./placement-health.js";
import { PlacementGrpc } from "./placement-service.js";
import type { CatalogModel, PlacementEffects, PlacementSettings, ResidencyEventRecord } from "./placement-types.js";
import { toWireEvent } from "./residency-events.js";
import { ModelFetches } from "./model-fetches.js";
import { RunnerProcesses } from "./runner-processes.js";

export interface PlacementServerOptions {
  config: Config;
  logger: Logger;
  /** Overrides config.placement.listen (tests use port 0). */
  listen?: string;
  runnerEnv?: NodeJS.ProcessEnv;
  onEvent?: (event: ResidencyEventRecord) => void;
  onRunnerEvent?: (runnerId: string, event: RunnerEvent) => void;
  /** Where the box's memory is read, the GPU's included (tests inject Jetson-like and discrete-GPU readings). */
  memorySource?: MemorySource;
  /** The secret of the internal planes (a gateway needs the same); made here when absent. */
  internalSecret?: InternalSecret;
}

export interface RunningPlacement {
  address: string;
  core: PlacementCore;
  processes: RunnerProcesses;
  budgetBytes: number;
  /** gpu_budget in bytes (discrete GPU); undefined when GPU memory is not budgeted. */
  gpuBudgetBytes: number | undefined;
  /** What a gateway needs to call this placement. */
  internalSecret: InternalSecret;
  stop(): Promise<void>;
}

/** Boots placement: its gRPC server, the core state machine, and runner processes. */
export async function startPlacement(options: PlacementServerOptions): Promise<RunningPlacement> {
  const { config, logger } = options;
  const clock = { now: () => Date.now() };
  // A percentage is of physical memory on a unified-memory box (Jetson), else of MemAvailable.
  const memorySource = options.memorySource ?? procMemorySource(config.unifiedMemory);
  const memory = memorySource.read();
  const budgetBytes = resolveBudget(config.budget, memory);
  // On a discrete GPU, models' VRAM is charged to gpu_budget apart; refused on unified memory
  // (budget covers the GPU there). The GPU is queried only for a percentage.
  const gpuBudgetBytes = resolveGpuBudget(config.gpuBudget, memory, config.gpuBudget?.kind === "fraction" && !memory.unifiedMemory ? memorySource.readGpu() : undefined);
  const secret = options.internalSecret ?? InternalSecret.random();
  const learned = new LearnedState(config.placement.stateFile);
  const catalog: CatalogModel[] = config.models.map((model) => {
    const stat = statOrZero(model.path);
    return { config: model, fileBytes: stat.size, fileMtimeMs: stat.mtimeMs, learned: learned.get(model.name), fileMissing: !stat.exists };
  });
  const settings: PlacementSettings = {
    budgetBytes,
    gpuBudgetBytes,
    policyName: config.placement.evictionPolicy,
    spareRunners: config.placement.spareRunners,
    queueMax: config.placement.queueMax,
    queueTimeoutMs: config.placement.queueTimeoutMs,
    minResidencyMs: config.placement.minResidencyMs,
    fairnessMs: config.placement.fairnessMs,
    prefetch: config.placement.prefetch,
    maxDownloads: config.placement.maxDownloads,
    runnerBaseBytesGuess: 96 * 1024 * 1024,
    maxLoadAttempts: 3,
    physicalBytes: memory.physicalBytes,
  };

  // Telemetry around the core: spans for acquires and swaps, Prometheus counters (no-ops without the SDK).
  const prefetchedFiles = new Set<string>();
  const metrics = new PlacementMetrics();
  const tracing = new PlacementTracing({
    metrics,
    fileBytes: (file) => statOrZero(file).size,
    loadSource: (file) => (prefetchedFiles.delete(file) ? "page_cache" : "unknown"),
  });
  const health = new PlacementHealth(config, logger);
  // More than one box: this box's record in etcd, published again on every residency change.
  let registered: RegisteredBox | undefined;
  const grpc = new PlacementGrpc(logger, clock, {
    onEvent: (event) => {
      logger.info(`residency_${event.kind}`, logFields(event));
      options.onEvent?.(event);
      registered?.changed();
    },
    onRunnerEvent: options.onRunnerEvent,
    onAcquire: (waiterId, call, requestedModel, model) => tracing.acquireStarted(waiterId, call.metadata, requestedModel, model),
    onAcquireEnd: (waiterId, outcome, error) => tracing.ended(waiterId, outcome, error),
    onLeaseEnd: (lease, outcome) => metrics.leaseEnded(lease.model, outcome),
  });
  const processes = new RunnerProcesses({ gpu: config.models[0]?.gpu ?? "auto", unifiedMemory: memory.unifiedMemory, logger, env: options.runnerEnv, listen: runnerListenAddress(config) });
  // Missing files of models with a source (hf:… or a URL) are fetched on first use, by a process of their own.
  const fetches = new ModelFetches({ logger, env: options.runnerEnv });
  const prefetches = new AbortController();
  const callEffects = grpc.callEffects();
  const effects: PlacementEffects = withTracing(
    {
      ...callEffects,
      // The token lets the runner check the router holds this lease (runner-data-service.ts).
      grant: (waiterId, lease) => callEffects.grant(waiterId, secret.signLease(lease, Date.now())),
      // Each runner gets a key for its own id, never the secret itself.
      spawnRunner: (runnerId) => processes.spawn(runnerId, server.address, secret.runnerKey(runnerId)),
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
      reportRejected: (runnerId, report, reason) => logger.warn("runner_report_rejected", { runnerId, report, reason }),
      startDownload: (order) => fetches.start(order),
    },
    tracing,
  );
  const core = new PlacementCore(catalog, settings, clock, withHealth(effects, health), `r${process.pid}-${randomBytes(2).toString("hex")}-`);
  const driver = new CoreDriver(core, clock);
  registerPlacementGauges(() => core.status());
  processes.onExit((runnerId, code) => driver.run((placement) => placement.runnerExited(runnerId, code)));
  fetches.onEvent((event) =>
    driver.run((placement) => {
      if (event.kind === "progress") placement.downloadProgress(event.model, event.bytes, event.totalBytes);
      else if (event.kind === "done") placement.downloadDone(event.model, event.file);
      else placement.downloadFailed(event.model, event.error);
    }),
  );

  // Gateways and runners prove they hold the secret (runners: a key derived from it) before anything is served.
  const sessions = new GatewaySessions(secret, logger);
  const services = [sessions.guard(grpc.placementService(driver)), grpc.runnerControlService(driver, secret), sessions.challengeService()];
  const server = await startServer(options.listen ?? config.placement.listen, [...services, health.binding(services), ...reflectionBindings(services)]);
  logger.info("placement_listening", { address: server.address, budgetBytes, ...(gpuBudgetBytes === undefined ? {} : { gpuBudgetBytes }), policy: settings.policyName });
  driver.run((placement) => placement.start());
  health.check();
  if (config.cluster) registered = await registerBox(config.cluster, core, server.address, logger);

  return {
    address: server.address,
    core,
    processes,
    budgetBytes,
    gpuBudgetBytes,
    internalSecret: secret,
    stop: async () => {
      await registered?.stop();
      core.stop();
      health.drain();
      driver.stop();
      prefetches.abort();
      tracing.close();
      grpc.stop();
      grpc.shutdownRunners();
      await Promise.all([processes.stopAll(), fetches.stopAll()]);
      await server.shutdown(500);
    },
  };
}

function statOrZero(file: string): { size: number; mtimeMs: number; exists: boolean } {
  try {
    const stat = statSync(file);
    return { size: stat.size, mtimeMs: stat.mtimeMs, exists: true };
  } catch {
    return { size: 0, mtimeMs: 0, exists: false };
  }
}

/** The few fields of a residency event a log line needs (the wire form: flat, readable). */
function logFields(event: ResidencyEventRecord) {
  const wire = toWireEvent(event);
  return { model: wire.model, reason: wire.reason, bytes: wire.bytes, runnerId: wire.runnerId, queueDepth: wire.queueDepth };
}
