import { failedPrecondition, notFound, resourceExhausted, unavailable, type ModelswapError } from "../../common/errors.js";
import type { ModelInfo } from "../../gen/modelswap/v1/inference.js";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import type { ModelLoaded, RunnerReady } from "../../gen/modelswap/v1/runner.js";
import { MemoryLedger } from "./memory-ledger.js";
import type { PlacementAction, PlacementView } from "./placement-actions.js";
import { PARKED_LEASE_MAX_IDLE_MS, planStep, replicasOf } from "./placement-plan.js";
import { describeModel, describeStatus } from "./placement-status.js";
import { policyByName, type AnyEvictionPolicy } from "./policies/registry.js";
import type { CatalogModel, Clock, PlacementEffects, PlacementSettings, ResidencyChange, WaiterKind } from "./placement-types.js";
import { reportChecks } from "./report-checks.js";
import { footprint, idleExpiresAtMs, gpuFootprint, type HostedModel, type LeaseRecord, type ModelRecord, type RunnerRecord, type UnloadReason, type WaiterRecord } from "./records.js";
import { WaitQueue } from "./wait-queue.js";
import { waitsForFile } from "./download-step.js";
import { boundedText } from "../../common/bounded-text.js";

/** More planning rounds than this in one event means the planner does not converge: a bug. */
const MAX_PLAN_ROUNDS = 10_000;

/**
 * The placement state machine. Events come in as method calls (a request, a release, a
 * runner's report, a timer tick); each updates the records, then the planner
 * (placement-plan.ts, pure) decides the next actions from the records and `apply` carries
 * them out through `effects`, until the planner has nothing left to do. All of it runs
 * synchronously: nothing is decided across an await.
 */
export class PlacementCore implements PlacementView {
  readonly models = new Map<string, ModelRecord>();
  readonly runners = new Map<string, RunnerRecord>();
  readonly queue: WaitQueue;
  readonly memory: MemoryLedger;
  readonly policy: AnyEvictionPolicy;
  policyState: unknown;
  spawnBackoffUntilMs = 0;
  private readonly aliases = new Map<string, string>();
  private readonly leases = new Map<string, LeaseRecord>();
  private runnerSerial = 0;
  private leaseSerial = 0;
  private consecutiveRunnerCrashes = 0;
  private stopped = false;

  constructor(
    catalog: readonly CatalogModel[],
    readonly settings: PlacementSettings,
    private readonly clock: Clock,
    private readonly effects: PlacementEffects,
    private readonly runnerIdPrefix = "r",
  ) {
    this.policy = policyByName(settings.policyName);
    this.policyState = this.policy.initialState();
    this.queue = new WaitQueue(settings.fairnessMs);
    this.memory = new MemoryLedger(settings.budgetBytes, settings.gpuBudgetBytes, settings.runnerBaseBytesGuess, this.runners, this.models);
    for (const entry of catalog) {
      const learned = entry.learned && entry.learned.fileBytes === entry.fileBytes && entry.learned.fileMtimeMs === entry.fileMtimeMs ? entry.learned : undefined;
      // state_file is read back under the same checks as the reports it came from.
      let estimatedBytes = learned?.estimatedBytes !== undefined && !reportChecks.estimate(learned.estimatedBytes, entry, settings.physicalBytes) ? learned.estimatedBytes : undefined;
      let measuredBytes = learned?.measuredBytes !== undefined && !reportChecks.measured(learned.measuredBytes, { estimatedBytes, fileBytes: entry.fileBytes }) ? learned.measuredBytes : undefined;
      // A figure's GPU part, checked against the figure; with a GPU budget, a figure without one
      // (a state file from before GPU budgets) is learned again rather than charged all to host memory.
      const gpuPart = (total: number | undefined, gpu: number | undefined) =>
        total === undefined ? undefined : gpu !== undefined && !reportChecks.gpuPart(gpu, total) ? gpu : settings.gpuBudgetBytes === undefined ? 0 : undefined;
      let estimatedGpuBytes = gpuPart(estimatedBytes, learned?.estimatedGpuBytes);
      let measuredGpuBytes = gpuPart(measuredBytes, learned?.measuredGpuBytes);
      if (estimatedGpuBytes === undefined) [estimatedBytes, estimatedGpuBytes] = [undefined, undefined];
      if (measuredGpuBytes === undefined) [measuredBytes, measuredGpuBytes] = [undefined, undefined];
      this.models.set(entry.config.name, {
        catalog: entry,
        file: entry.fileMissing && entry.config.source ? { state: "missing" } : { state: "present" },
        pinned: entry.config.pin,
        estimatedBytes,
        measuredBytes,
        estimatedGpuBytes,
        measuredGpuBytes,
        reloadCostMs: learned?.loadMs !== undefined && !reportChecks.durationMs(learned.loadMs) ? learned.loadMs : undefined,
        estimating: false,
        lastUsedMs: 0,
        useCount: 0,
        loads: 0,
        evictions: 0,
        consecutiveLoadFailures: 0,
        unloadRequested: false,
        prefetched: false,
      });
      for (const alias of entry.config.aliases) this.aliases.set(alias, entry.config.name);
    }
  }

  get nowMs(): number {
    return this.clock.now();
  }

  /** Starts the warm runner and loads the models marked preload (and min replicas). */
  start(): void {
    for (const model of this.models.values()) {
      const config = model.catalog.config;
      if (config.preload || config.pin || config.replicas.min > 1) this.enqueue(`preload:${config.name}`, config.name, "load", Number.POSITIVE_INFINITY, new Set());
    }
    this.reconcile();
  }

  /** Placement is shutting down: nothing more is planned, and its runners' exits (it ends them next) are expected, not crashes. */
  stop(): void {
    this.stopped = true;
    for (const runner of this.runners.values()) runner.state = "stopping";
  }

  // ---- requests -------------------------------------------------------------

  /** Resolves a name or alias to the catalog name; throws NOT_FOUND naming the known models. */
  resolve(name: string): string {
    if (this.models.has(name)) return name;
    const target = this.aliases.get(name);
    if (target) return target;
    throw notFound(`model "${name}" is not in the catalog; known models: ${[...this.models.keys()].join(", ")}`);
  }

  /**
   * Asks for a lease on a model (kind "lease") or for the model to be resident
   * (kind "load"). The answer comes through effects.grant / loadDone / reject.
   */
  request(waiterId: string, name: string, kind: WaiterKind, deadlineMs: number, excludeRunners: ReadonlySet<string> = new Set()): void {
    const modelName = this.resolve(name);
    const tooBig = this.memory.tooBigError(this.models.get(modelName)!);
    if (tooBig) throw tooBig;
    if (this.queue.length >= this.settings.queueMax) {
      throw resourceExhausted(
        `the wait queue is full (${this.settings.queueMax} requests waiting for models to load); retry in a few seconds or raise placement.queue_max`,
        2,
      );
    }
    const waiter = this.enqueue(waiterId, modelName, kind, Math.min(deadlineMs, this.nowMs + this.settings.queueTimeoutMs), excludeRunners);
    // A request that joins a download sees where it stands at once (the next report may be a while).
    const file = this.models.get(modelName)!.file;
    if (file.state === "downloading") {
      waiter.loadStartedMs = this.nowMs;
      this.effects.notifyDownloading(waiterId, modelName, file.bytes, file.totalBytes);
    }
    this.reconcile();
  }

  /** The caller gave up waiting (cancelled or disconnected). */
  cancel(waiterId: string): void {
    const waiter = this.queue.find(waiterId);
    if (!waiter) return;
    this.queue.remove(waiter);
    this.publish({ kind: "dequeued", model: waiter.model, waiterId });
    this.reconcile();
  }

  release(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    if (!lease) return;
    this.leases.delete(leaseId);
    const hosted = this.hostedOf(lease);
    hosted?.leases.delete(leaseId);
    hosted?.revoking.delete(leaseId);
    // A parked lease given back was last used when it was parked.
    const wasStreaming = hosted?.parked.delete(leaseId) === false;
    const model = this.models.get(lease.model);
    if (model && wasStreaming) model.lastUsedMs = this.nowMs;
    this.reconcile();
  }

  /** The holder keeps the lease after a stream ended (held lease): the model was used now. */
  leaseParked(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    const hosted = lease && this.hostedOf(lease);
    if (!lease || !hosted || hosted.parked.has(leaseId)) return;
    hosted.parked.set(leaseId, this.nowMs);
    this.models.get(lease.model)!.lastUsedMs = this.nowMs;
    this.reconcile();
  }

  /** A new stream starts on a parked lease: a use of its model, without an Acquire. */
  leaseResumed(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    const hosted = lease && this.hostedOf(lease);
    if (!lease || !hosted || !hosted.parked.delete(leaseId)) return;
    const model = this.models.get(lease.model)!;
    model.lastUsedMs = this.nowMs;
    model.useCount++;
    this.policyState = this.policy.onAccess(this.policyState, this.accessed(model), this.nowMs);
    this.reconcile();
  }

  private hostedOf(lease: LeaseRecord): HostedModel | undefined {
    return this.runners.get(lease.runnerId)?.hosted.get(lease.model);
  }

  pin(name: string, pinned: boolean): ModelInfo {
    const model = this.models.get(this.resolve(name))!;
    const modelName = model.catalog.config.name;
    model.pinned = pinned;
    this.publish({ kind: pinned ? "pinned" : "unpinned", model: modelName });
    if (pinned && replicasOf(this, modelName).length === 0) this.enqueue(`pin:${modelName}:${this.nowMs}`, modelName, "load", Number.POSITIVE_INFINITY, new Set());
    this.reconcile();
    return this.modelInfo(model);
  }

  /** Unloads a model as soon as its streams end. */
  unload(name: string): ModelInfo {
    const model = this.models.get(this.resolve(name))!;
    if (model.pinned) throw failedPrecondition(`model "${model.catalog.config.name}" is pinned; unpin it first (PinModel pinned=false)`);
    // Only a model with replicas has something to unload; the flag ends with its last replica.
    model.unloadRequested = replicasOf(this, model.catalog.config.name).length > 0;
    this.reconcile();
    return this.modelInfo(model);
  }

  // ---- runner events --------------------------------------------------------

  runnerConnected(hello: RunnerReady): void {
    const rssProblem = reportChecks.rss(hello.rssBytes, this.settings.physicalBytes);
    if (rssProblem) this.effects.reportRejected(hello.runnerId, "ready.rss_bytes", rssProblem);
    let runner = this.runners.get(hello.runnerId);
    if (!runner) {
      // A runner from before a placement restart: adopt it with what it has loaded.
      runner = this.newRunnerRecord(hello.runnerId);
      this.runners.set(runner.id, runner);
    }
    const fresh = runner.state === "starting" && hello.hosted.length === 0;
    runner.registered = true;
    runner.state = "ready";
    runner.pid = hello.pid;
    runner.address = hello.address;
    if (!rssProblem) runner.rssBytes = hello.rssBytes;
    let adoptedBytes = 0;
    for (const held of hello.hosted) {
      const model = this.models.get(held.model);
      if (!model) {
        this.effects.sendToRunner(runner.id, { command: { $case: "unload", value: { model: held.model } } });
        continue;
      }
      if (!runner.hosted.has(held.model)) runner.hosted.set(held.model, this.newHosted(held.model, "ready"));
      const measuredProblem = reportChecks.measured(held.measuredBytes, { estimatedBytes: model.estimatedBytes, fileBytes: model.catalog.fileBytes });
      const gpuProblem = measuredProblem ? undefined : reportChecks.gpuPart(held.gpuBytes, held.measuredBytes);
      if (measuredProblem) this.effects.reportRejected(runner.id, `ready.hosted[${held.model}].measured_bytes`, measuredProblem);
      else if (gpuProblem) this.effects.reportRejected(runner.id, `ready.hosted[${held.model}].gpu_bytes`, gpuProblem);
      else if (model.measuredBytes === undefined) [model.measuredBytes, model.measuredGpuBytes] = [held.measuredBytes, held.gpuBytes];
      const measured = measuredProblem || gpuProblem ? (footprint(model) ?? 0) : held.measuredBytes;
      // The runner's RSS shows a model's host part only: GPU allocations (VRAM, or nvmap on a Jetson) are not in it.
      adoptedBytes += measured - (measuredProblem || gpuProblem ? gpuFootprint(model) : held.gpuBytes);
      if (model.catalog.config.isolation === "process") runner.isolatedFor = held.model;
      this.publish({ kind: "loaded", model: held.model, runnerId: runner.id, measuredBytes: measured, rssBytes: runner.rssBytes, fileBytes: model.catalog.fileBytes, timings: undefined });
    }
    if (rssProblem) {
      // Charged as a fresh runner until its reports make sense.
      runner.baseBytes = runner.initialBaseBytes = this.memory.runnerBaseBytes();
    } else if (fresh) {
      runner.baseBytes = hello.rssBytes;
      runner.initialBaseBytes = hello.rssBytes;
      this.memory.learnRunnerBase(hello.rssBytes);
    } else {
      runner.baseBytes = Math.max(0, hello.rssBytes - adoptedBytes);
      runner.initialBaseBytes = Math.min(runner.baseBytes, this.memory.runnerBaseBytes());
    }
    this.publish({ kind: "runner_started", runnerId: runner.id, rssBytes: hello.rssBytes });
    this.consecutiveRunnerCrashes = 0;
    this.reconcile();
  }

  runnerProgress(runnerId: string, model: string, progress: number): void {
    if (this.runners.get(runnerId)?.hosted.get(model)?.state !== "loading") return;
    const problem = reportChecks.progress(progress);
    if (problem) return this.effects.reportRejected(runnerId, "progress", problem);
    for (const waiter of this.queue.of(model)) this.effects.notifyLoading(waiter.id, model, progress);
  }

  runnerLoaded(runnerId: string, loaded: ModelLoaded): void {
    const runner = this.runners.get(runnerId);
    const model = this.models.get(loaded.model);
    const hosted = runner?.hosted.get(loaded.model);
    if (!runner || !model || hosted?.state !== "loading") return;
    hosted.state = "ready";
    hosted.backend = loaded.backend;
    hosted.gpuLayers = loaded.gpuLayers;
    // What fails its check stays out of the ledger, the policy and state_file (the estimate stands in).
    const problems = {
      rss_bytes: reportChecks.rss(loaded.rssBytes, this.settings.physicalBytes),
      measured_bytes: reportChecks.measured(loaded.measuredBytes, { estimatedBytes: model.estimatedBytes, fileBytes: model.catalog.fileBytes }),
      gpu_bytes: reportChecks.gpuPart(loaded.gpuBytes, loaded.measuredBytes),
      load_ms: [loaded.loadMs, loaded.modelLoadMs, loaded.contextMs, loaded.warmUpMs].map(reportChecks.durationMs).find(Boolean),
    };
    for (const [field, problem] of Object.entries(problems)) if (problem) this.effects.reportRejected(runnerId, `loaded.${field}`, problem);
    if (!problems.rss_bytes) runner.rssBytes = loaded.rssBytes;
    // The total and its GPU part are one figure: both are taken, or neither.
    if (!problems.measured_bytes && !problems.gpu_bytes) [model.measuredBytes, model.measuredGpuBytes] = [loaded.measuredBytes, loaded.gpuBytes];
    if (!problems.load_ms) model.reloadCostMs = loaded.loadMs;
    model.loads++;
    model.consecutiveLoadFailures = 0;
    model.prefetched = false;
    model.lastUsedMs = this.nowMs;
    this.policyState = this.policy.onAccess(this.policyState, this.accessed(model), this.nowMs);
    for (const waiter of this.queue.of(loaded.model)) this.effects.notifyLoading(waiter.id, loaded.model, 1);
    this.publish({
      kind: "loaded",
      model: loaded.model,
      runnerId,
      measuredBytes: problems.measured_bytes || problems.gpu_bytes ? (footprint(model) ?? 0) : loaded.measuredBytes,
      rssBytes: runner.rssBytes,
      fileBytes: model.catalog.fileBytes,
      timings: problems.load_ms ? undefined : { loadMs: loaded.loadMs, modelLoadMs: loaded.modelLoadMs, contextMs: loaded.contextMs, warmUpMs: loaded.warmUpMs },
    });
    this.effects.learned(loaded.model, this.learnedFacts(model));
    this.reconcile();
  }

  runnerLoadFailed(runnerId: string, modelName: string, reason: string): void {
    const runner = this.runners.get(runnerId);
    const model = this.models.get(modelName);
    if (!runner || runner.hosted.get(modelName)?.state !== "loading") return;
    reason = boundedText(reason);
    this.removeHosted(runner, modelName);
    this.publish({ kind: "load_failed", model: modelName, runnerId, reason });
    // A fetched model whose file went away waits for it to be fetched again.
    if (model && !waitsForFile(model.file, model.catalog.config.source !== undefined)) this.rejectWaitersOf(modelName, failedPrecondition(`model "${modelName}" failed to load: ${reason}. Check the file at ${model.catalog.config.path}`));
    this.reconcile();
  }

  runnerUnloaded(runnerId: string, modelName: string, rssBeforeBytes: number, rssAfterBytes: number): void {
    const runner = this.runners.get(runnerId);
    const hosted = runner?.hosted.get(modelName);
    if (!runner || hosted?.state !== "unloading") return;
    this.removeHosted(runner, modelName);
    const problem = reportChecks.rss(rssBeforeBytes, this.settings.physicalBytes) ?? reportChecks.rss(rssAfterBytes, this.settings.physicalBytes);
    if (problem) {
      // The model's bytes leave the ledger; the runner keeps the base it had.
      this.effects.reportRejected(runnerId, "unloaded.rss_bytes", problem);
      this.publish({ kind: "unloaded", model: modelName, runnerId, reason: hosted.unload ?? { cause: "admin_unload" }, rssBeforeBytes: runner.rssBytes, rssAfterBytes: runner.rssBytes });
      this.reconcile();
      return;
    }
    runner.rssBytes = rssAfterBytes;
    this.publish({ kind: "unloaded", model: modelName, runnerId, reason: hosted.unload ?? { cause: "admin_unload" }, rssBeforeBytes, rssAfterBytes });
    // The ledger charges what is really there: memory the runner kept counts as its own.
    let stillHosted = 0;
    for (const other of runner.hosted.values()) stillHosted += this.memory.modelBytes(other.model);
    runner.baseBytes = Math.max(runner.initialBaseBytes, rssAfterBytes - stillHosted);
    // An empty runner that kept far more than it should is ended at once (nothing to move).
    const slack = Math.max(64 * 1024 * 1024, runner.initialBaseBytes * 0.25);
    if (runner.hosted.size === 0 && runner.baseBytes > runner.initialBaseBytes + slack) this.stopRunner(runner, true, undefined);
    this.reconcile();
  }

  runnerHeartbeat(runnerId: string, rssBytes: number): void {
    const runner = this.runners.get(runnerId);
    if (!runner) return;
    const problem = reportChecks.rss(rssBytes, this.settings.physicalBytes);
    if (problem) this.effects.reportRejected(runnerId, "heartbeat.rss_bytes", problem);
    else runner.rssBytes = rssBytes;
  }

  /** A runner's estimate for a model placement asked about (any other is ignored). */
  runnerEstimate(runnerId: string, modelName: string, bytes: number, error: string, gpuBytes = 0): void {
    const model = this.models.get(modelName);
    if (!model?.estimating) return;
    model.estimating = false;
    const problem = error ? undefined : (reportChecks.estimate(bytes, model.catalog, this.settings.physicalBytes) ?? reportChecks.gpuPart(gpuBytes, bytes));
    if (problem) this.effects.reportRejected(runnerId, "estimate.bytes", problem);
    if (waitsForFile(model.file, model.catalog.config.source !== undefined)) {
      // The file went away (fileGone): the waiters wait for its download; it is estimated after.
      return this.reconcile();
    }
    if (error || problem) {
      const why = error ? boundedText(error) : `the runner's estimate is not plausible (${problem})`;
      this.rejectWaitersOf(modelName, failedPrecondition(`cannot read model "${modelName}" at ${model.catalog.config.path}: ${why}`));
    } else {
      [model.estimatedBytes, model.estimatedGpuBytes] = [bytes, gpuBytes];
      this.effects.learned(modelName, this.learnedFacts(model));
      const tooBig = this.memory.tooBigError(model);
      if (tooBig) this.rejectWaitersOf(modelName, tooBig);
    }
    this.reconcile();
  }

  // ---- download events (a missing file fetched from the model's source) -------------

  /** Placement found the model's file gone from disk (after a failed load or estimate): a model with a source is fetched again before its next load. */
  fileGone(modelName: string): void {
    const model = this.models.get(modelName);
    if (!model?.catalog.config.source || model.file.state !== "present") return;
    model.file = { state: "missing" };
  }

  /** Where a model fetched on first use keeps its file (undefined for a model with no source). */
  fetchedPath(modelName: string): string | undefined {
    const config = this.models.get(modelName)?.catalog.config;
    return config?.source ? config.path : undefined;
  }

  /** The download of `modelName`'s file reached `bytes` of `totalBytes` (0 while unknown). */
  downloadProgress(modelName: string, bytes: number, totalBytes: number): void {
    const model = this.models.get(modelName);
    if (model?.file.state !== "downloading") return;
    if (reportChecks.bytes(bytes) ?? reportChecks.bytes(totalBytes)) return;
    model.file.bytes = bytes;
    model.file.totalBytes = totalBytes;
    for (const waiter of this.queue.of(modelName)) this.effects.notifyDownloading(waiter.id, modelName, bytes, totalBytes);
  }

  /** The file is on disk: the model is estimated and loaded like any other (memory is charged from its load on). */
  downloadDone(modelName: string, file: { bytes: number; mtimeMs: number }): void {
    const model = this.models.get(modelName);
    if (model?.file.state !== "downloading") return;
    const downloadMs = this.nowMs - model.file.startedMs;
    model.file = { state: "present" };
    model.catalog = { ...model.catalog, fileBytes: file.bytes, fileMtimeMs: file.mtimeMs };
    this.publish({ kind: "downloaded", model: modelName, path: model.catalog.config.path, bytes: file.bytes, downloadMs });
    this.reconcile();
  }

  /** The download failed: its waiters get `error`; the next request for the model tries again. */
  downloadFailed(modelName: string, error: ModelswapError): void {
    const model = this.models.get(modelName);
    if (model?.file.state !== "downloading") return;
    model.file = { state: "missing" };
    this.publish({ kind: "download_failed", model: modelName, reason: boundedText(error.message) });
    this.rejectWaitersOf(modelName, error);
    this.reconcile();
  }

  /** A runner process ended (or its control stream broke): every model in it leaves at once. */
  runnerExited(runnerId: string, exitCode: number | null): void {
    const runner = this.runners.get(runnerId);
    if (!runner) return;
    this.runners.delete(runnerId);
    const expected = runner.state === "stopping";
    const models = [...runner.hosted.keys()];
    const loading = [...runner.hosted.values()].filter((hosted) => hosted.state === "loading").map((hosted) => hosted.model);
    for (const hosted of runner.hosted.values()) {
      for (const leaseId of hosted.leases) {
        this.leases.delete(leaseId);
        // A held lease on a runner that is gone is of no use: its holder drops it now rather than on its next request.
        if (hosted.parked.has(leaseId)) this.effects.revokeLease(leaseId);
      }
      if (expected && hosted.unload) {
        this.publish({ kind: "unloaded", model: hosted.model, runnerId, reason: hosted.unload, rssBeforeBytes: runner.rssBytes, rssAfterBytes: 0 });
      }
    }
    if (!expected) {
      this.consecutiveRunnerCrashes++;
      this.spawnBackoffUntilMs = this.nowMs + Math.min(30_000, 250 * 2 ** Math.min(this.consecutiveRunnerCrashes - 1, 7));
    }
    // Estimates sent to this runner are lost with it; they are asked again.
    for (const model of this.models.values()) model.estimating = false;
    if (!runner.registered && this.consecutiveRunnerCrashes >= this.settings.maxLoadAttempts) {
      // Runners die before they even register: nothing queued for a cold model can be served.
      for (const waiter of this.queue.all()) {
        if (replicasOf(this, waiter.model).some((replica) => replica.hosted.state === "ready")) continue;
        this.queue.remove(waiter);
        this.effects.reject(waiter.id, unavailable(`runner processes exit at start (${this.consecutiveRunnerCrashes} in a row); check the runner logs and the node-llama-cpp build`, 10));
      }
    }
    for (const modelName of loading) {
      const model = this.models.get(modelName);
      if (model && ++model.consecutiveLoadFailures >= this.settings.maxLoadAttempts) {
        model.consecutiveLoadFailures = 0;
        this.rejectWaitersOf(modelName, unavailable(`runners crashed ${this.settings.maxLoadAttempts} times loading "${modelName}"; check the model file and the runner logs`, 5));
      }
    }
    for (const name of models) this.endUnloadRequestWhenGone(name);
    this.publish({ kind: "runner_exited", runnerId, models, loading, expected, exitCode });
    this.reconcile();
  }

  /** Timers: deadlines, idle TTLs, fairness bounds, spawn backoff. */
  tick(): void {
    this.reconcile();
  }

  /** When tick() should next be called; undefined when nothing is timed. */
  nextWakeMs(): number | undefined {
    const now = this.nowMs;
    // Only moments still ahead: a passed one has been acted on (or waits for an event).
    const ahead = [...this.queue.wakeTimes(), this.spawnBackoffUntilMs].filter((at) => at > now && Number.isFinite(at));
    for (const runner of this.runners.values()) {
      if (runner.state !== "ready") continue;
      for (const hosted of runner.hosted.values()) {
        const model = this.models.get(hosted.model)!;
        const expiresAtMs = idleExpiresAtMs(model);
        if (hosted.state === "ready" && expiresAtMs !== undefined && expiresAtMs > now) ahead.push(expiresAtMs);
        for (const parkedAtMs of hosted.parked.values()) if (parkedAtMs + PARKED_LEASE_MAX_IDLE_MS > now) ahead.push(parkedAtMs + PARKED_LEASE_MAX_IDLE_MS);
      }
    }
    return ahead.length > 0 ? Math.min(...ahead) : undefined;
  }

  // ---- deciding and acting ----------------------------------------------------------

  private reconcile(): void {
    if (this.stopped) return;
    for (let round = 0; ; round++) {
      if (round > MAX_PLAN_ROUNDS) throw new Error("placement planner did not converge");
      const actions = planStep(this);
      if (actions.length === 0) break;
      for (const action of actions) this.apply(action);
    }
    for (const { waiter, position } of this.queue.positionChanges()) this.effects.notifyQueued(waiter.id, waiter.model, position);
  }

  private apply(action: PlacementAction): void {
    switch (action.kind) {
      case "reject": {
        const waiter = this.queue.find(action.waiterId);
        if (waiter) this.queue.remove(waiter);
        return this.effects.reject(action.waiterId, action.error);
      }
      case "grant":
        return this.grant(action.waiterId, action.runnerId);
      case "load_done": {
        const waiter = this.queue.find(action.waiterId)!;
        this.queue.remove(waiter);
        return this.effects.loadDone(waiter.id, waiter.model, this.models.get(waiter.model)!.reloadCostMs ?? 0);
      }
      case "load":
        return this.startLoad(this.runners.get(action.runnerId)!, this.models.get(action.model)!, action.forWaiter);
      case "spawn_runner":
        return this.spawnRunner();
      case "unload":
        return this.beginUnload(this.runners.get(action.runnerId)!, action.model, action.reason, action.forWaiter);
      case "evict":
        for (const victim of action.victims) {
          this.models.get(victim)!.evictions++;
          for (const { runner, hosted } of replicasOf(this, victim)) {
            if (hosted.state === "ready" && hosted.leases.size === 0) this.beginUnload(runner, victim, action.reason, action.forWaiter);
          }
        }
        this.policyState = this.policy.onEvict(this.policyState, action.victims);
        return;
      case "stop_runner":
        return this.stopRunner(this.runners.get(action.runnerId)!, action.kill, action.reason);
      case "estimate": {
        const model = this.models.get(action.model)!;
        model.estimating = true;
        const config = model.catalog.config;
        return this.effects.sendToRunner(action.runnerId, {
          command: {
            $case: "estimate",
            value: { requestId: config.name, path: config.path, contextSize: config.contextSize, sequences: config.sequences, gpuLayers: config.gpuLayers === "auto" ? -1 : config.gpuLayers },
          },
        });
      }
      case "revoke_leases":
        for (const leaseId of action.leaseIds) {
          const lease = this.leases.get(leaseId);
          if (!lease) continue;
          this.hostedOf(lease)?.revoking.add(leaseId);
          this.effects.revokeLease(leaseId);
        }
        return;
      case "start_download":
        return this.startDownload(this.models.get(action.model)!);
      case "prefetch": {
        const model = this.models.get(action.model)!;
        model.prefetched = true;
        return this.effects.prefetch(model.catalog.config.path);
      }
    }
  }

  private grant(waiterId: string, runnerId: string): void {
    const waiter = this.queue.find(waiterId)!;
    const runner = this.runners.get(runnerId)!;
    const hosted = runner.hosted.get(waiter.model)!;
    const model = this.models.get(waiter.model)!;
    const now = this.nowMs;
    this.queue.remove(waiter);
    const leaseId = `lease-${++this.leaseSerial}`;
    this.leases.set(leaseId, { id: leaseId, model: waiter.model, runnerId });
    hosted.leases.add(leaseId);
    model.lastUsedMs = now;
    model.useCount++;
    this.policyState = this.policy.onAccess(this.policyState, this.accessed(model), now);
    const loadMs = waiter.loadStartedMs === undefined ? 0 : Math.max(0, now - waiter.loadStartedMs);
    const config = model.catalog.config;
    this.effects.grant(waiter.id, {
      leaseId,
      model: waiter.model,
      runnerId,
      runnerAddress: runner.address,
      queueMs: Math.max(0, now - waiter.enqueuedMs - loadMs),
      loadMs,
      contextSize: config.contextSize,
      defaultSampling: { ...config.sampling, stop: [], ignoreEos: false },
      token: "", // signed on its way out (placement-server.ts), where the secret is
    });
  }

  private startLoad(runner: RunnerRecord, model: ModelRecord, forWaiter: string | undefined): void {
    const config = model.catalog.config;
    const now = this.nowMs;
    runner.hosted.set(config.name, this.newHosted(config.name, "loading"));
    if (config.isolation === "process") runner.isolatedFor = config.name;
    for (const waiter of this.queue.of(config.name)) {
      waiter.loadStartedMs ??= now;
      this.effects.notifyLoading(waiter.id, config.name, 0);
    }
    const bytes = this.memory.accountedBytes(model);
    this.publish({
      kind: "loading",
      model: config.name,
      runnerId: runner.id,
      path: config.path,
      bytes,
      overcommittedBytes: config.allowOvercommit ? Math.max(0, (footprint(model) ?? 0) - bytes) : 0,
      forWaiter,
    });
    this.effects.sendToRunner(runner.id, {
      command: {
        $case: "load",
        value: {
          model: config.name,
          path: config.path,
          contextSize: config.contextSize,
          sequences: config.sequences,
          threads: config.threads,
          gpu: config.gpu,
          // A request waiting for the model warms it up itself (its prompt touches every weight):
          // a warm-up then only delays its first token. Loads nobody waits on warm up.
          warmUp: !this.queue.of(config.name).some((waiter) => waiter.kind === "lease"),
          useMmap: config.allowOvercommit,
          gpuLayers: config.gpuLayers === "auto" ? -1 : config.gpuLayers,
        },
      },
    });
  }

  /** Waiters see the download from its first byte; the download goes on if they all leave (the file stays for the next). */
  private startDownload(model: ModelRecord): void {
    const config = model.catalog.config;
    model.file = { state: "downloading", bytes: 0, totalBytes: 0, startedMs: this.nowMs };
    for (const waiter of this.queue.of(config.name)) {
      // The download counts in the load time a lease reports (queue_ms + load_ms: the wait, then making the model ready).
      waiter.loadStartedMs ??= this.nowMs;
      this.effects.notifyDownloading(waiter.id, config.name, 0, 0);
    }
    this.publish({ kind: "downloading", model: config.name, source: config.source!.uri, path: config.path });
    this.effects.startDownload({ model: config.name, source: config.source!.uri, path: config.path, ...(config.sha256 ? { sha256: config.sha256 } : {}) });
  }

  private beginUnload(runner: RunnerRecord, modelName: string, reason: UnloadReason, forWaiter: string | undefined): void {
    const hosted = runner.hosted.get(modelName)!;
    hosted.state = "unloading";
    hosted.unload = reason;
    this.publish({ kind: "unloading", model: modelName, runnerId: runner.id, bytes: this.memory.modelBytes(modelName), reason, forWaiter });
    this.effects.sendToRunner(runner.id, { command: { $case: "unload", value: { model: modelName } } });
  }

  private spawnRunner(): void {
    const runner = this.newRunnerRecord(`${this.runnerIdPrefix}${++this.runnerSerial}`);
    this.runners.set(runner.id, runner);
    this.effects.spawnRunner(runner.id);
  }

  /** Ends a runner; models still in it leave with it (announced as unloading for `reason`). */
  private stopRunner(runner: RunnerRecord, kill: boolean, reason: UnloadReason | undefined): void {
    runner.state = "stopping";
    for (const hosted of runner.hosted.values()) {
      if (hosted.state === "unloading") continue;
      hosted.state = "unloading";
      hosted.unload = reason ?? { cause: "runner_recycled" };
      this.publish({ kind: "unloading", model: hosted.model, runnerId: runner.id, bytes: this.memory.modelBytes(hosted.model), reason: hosted.unload, forWaiter: undefined });
    }
    if (kill) this.effects.killRunner(runner.id);
    else this.effects.sendToRunner(runner.id, { command: { $case: "shutdown", value: {} } });
  }

  private removeHosted(runner: RunnerRecord, modelName: string): void {
    runner.hosted.delete(modelName);
    if (runner.isolatedFor === modelName) runner.isolatedFor = undefined;
    this.endUnloadRequestWhenGone(modelName);
  }

  /** An admin's unload is done once no replica is left (unloaded, failed or crashed): the next request loads the model to stay. */
  private endUnloadRequestWhenGone(modelName: string): void {
    const model = this.models.get(modelName);
    if (model && replicasOf(this, modelName).length === 0) model.unloadRequested = false;
  }

  // ---- helpers ----------------------------------------------------------------------

  private enqueue(id: string, model: string, kind: WaiterKind, deadlineMs: number, excludeRunners: ReadonlySet<string>): WaiterRecord {
    const waiter = this.queue.add(id, model, kind, this.nowMs, deadlineMs, excludeRunners);
    this.publish({ kind: "queued", model, waiterId: id, waiterKind: kind });
    return waiter;
  }

  private rejectWaitersOf(modelName: string, error: ModelswapError): void {
    for (const waiter of this.queue.of(modelName)) {
      this.queue.remove(waiter);
      this.effects.reject(waiter.id, error);
    }
  }

  private newRunnerRecord(id: string): RunnerRecord {
    const base = this.memory.runnerBaseBytes();
    return { id, state: "starting", pid: 0, address: "", hosted: new Map(), isolatedFor: undefined, rssBytes: 0, baseBytes: base, initialBaseBytes: base, registered: false };
  }

  private newHosted(model: string, state: HostedModel["state"]): HostedModel {
    return { model, state, leases: new Set(), parked: new Map(), revoking: new Set(), loadStartedMs: this.nowMs, unload: undefined, backend: "", gpuLayers: 0 };
  }

  private accessed(model: ModelRecord) {
    return { name: model.catalog.config.name, bytes: this.memory.accountedBytes(model), gpuBytes: this.memory.accountedGpuBytes(model), reloadCostMs: model.reloadCostMs ?? 1000, priority: model.catalog.config.priority };
  }

  private learnedFacts(model: ModelRecord) {
    return {
      measuredBytes: model.measuredBytes,
      estimatedBytes: model.estimatedBytes,
      measuredGpuBytes: model.measuredGpuBytes,
      estimatedGpuBytes: model.estimatedGpuBytes,
      loadMs: model.reloadCostMs,
      fileBytes: model.catalog.fileBytes,
      fileMtimeMs: model.catalog.fileMtimeMs,
    };
  }

  private publish(change: ResidencyChange): void {
    this.effects.publish({ ...change, timeMs: this.nowMs, queueDepth: this.queue.length });
  }

  // ---- read side --------------------------------------------------------------------

  listModels(): ModelInfo[] {
    return [...this.models.values()].map((model) => this.modelInfo(model));
  }

  modelInfo(model: ModelRecord): ModelInfo {
    const name = model.catalog.config.name;
    return describeModel(model, replicasOf(this, name).map((replica) => replica.hosted), this.queue.countOf(name));
  }

  status(): StatusResponse {
    return describeStatus(this.nowMs, this.memory, this.policy.name, this.models, this.runners, (name) => this.queue.countOf(name));
  }
}


