import { deadlineExceeded, failedPrecondition, notFound, resourceExhausted, unavailable } from "../../common/errors.js";
import type { ModelInfo } from "../../gen/modelswap/v1/inference.js";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import type { ModelLoaded, RunnerReady } from "../../gen/modelswap/v1/runner.js";
import { formatBytes } from "../../common/format-bytes.js";
import { availableReplicas, pickReplica } from "../router/replica-picker.js";
import { MemoryLedger } from "./memory-ledger.js";
import { describeModel, describeStatus } from "./placement-status.js";
import type { ResidentModel } from "./policies/eviction-policy.js";
import { policyByName, type AnyEvictionPolicy } from "./policies/registry.js";
import type { CatalogModel, Clock, PlacementEffects, PlacementSettings, WaiterKind } from "./placement-types.js";
import { footprint, type LeaseRecord, type ModelRecord, type RunnerRecord, type WaiterRecord } from "./records.js";

/**
 * The placement state machine. Events come in as method calls (request, release,
 * runner events, tick); every decision is taken here, synchronously, and acted on
 * through `effects`. Invariants:
 * - a load starts only when committed bytes + its footprint fit the budget;
 * - a model with leases, queued work (within the fairness bound), or pinned is never evicted;
 * - concurrent requests for one cold model share one load.
 */
/** Memory a spare may keep from its last model before it is replaced to make room. */
const RETAINED_SLACK_BYTES = 8 * 1024 * 1024;

export class PlacementCore {
  private readonly models = new Map<string, ModelRecord>();
  private readonly aliases = new Map<string, string>();
  private readonly runners = new Map<string, RunnerRecord>();
  private readonly queue: WaiterRecord[] = [];
  private readonly leases = new Map<string, LeaseRecord>();
  private readonly policy: AnyEvictionPolicy;
  private policyState: unknown;
  private runnerSerial = 0;
  private leaseSerial = 0;
  private spawnBackoffUntilMs = 0;
  private consecutiveRunnerCrashes = 0;
  private readonly memory: MemoryLedger;
  private stopped = false;

  constructor(
    catalog: readonly CatalogModel[],
    private readonly settings: PlacementSettings,
    private readonly clock: Clock,
    private readonly effects: PlacementEffects,
    private readonly runnerIdPrefix = "r",
  ) {
    this.policy = policyByName(settings.policyName);
    this.memory = new MemoryLedger(settings.budgetBytes, settings.runnerBaseBytesGuess, this.runners, this.models);
    this.policyState = this.policy.initialState();
    for (const entry of catalog) {
      const fresh = entry.learned && entry.learned.fileBytes === entry.fileBytes && entry.learned.fileMtimeMs === entry.fileMtimeMs;
      this.models.set(entry.config.name, {
        catalog: entry,
        pinned: entry.config.pin,
        estimatedBytes: fresh ? entry.learned?.estimatedBytes : undefined,
        measuredBytes: fresh ? entry.learned?.measuredBytes : undefined,
        reloadCostMs: fresh ? entry.learned?.loadMs : undefined,
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

  /** Starts spare runners and loads the models marked preload (and min replicas). */
  start(): void {
    for (const model of this.models.values()) {
      const config = model.catalog.config;
      if (config.preload || config.pin || config.replicas.min > 1) {
        this.enqueue(`preload:${config.name}`, config.name, "load", Number.POSITIVE_INFINITY, new Set());
      }
    }
    this.reconcile();
  }

  /** Placement is shutting down: runners exit and nothing is started again. */
  stop(): void {
    this.stopped = true;
  }

  // ---- requests -------------------------------------------------------------

  /** Resolves a name or alias to the catalog name; throws NOT_FOUND naming the known models. */
  resolve(name: string): string {
    if (this.models.has(name)) return name;
    const target = this.aliases.get(name);
    if (target) return target;
    const known = [...this.models.keys()].join(", ");
    throw notFound(`model "${name}" is not in the catalog; known models: ${known}`);
  }

  /**
   * Asks for a lease on a model (kind "lease") or for the model to be resident
   * (kind "load"). The answer comes through effects.grant / loadDone / reject.
   */
  request(waiterId: string, name: string, kind: WaiterKind, deadlineMs: number, excludeRunners: ReadonlySet<string> = new Set()): void {
    const modelName = this.resolve(name);
    const model = this.models.get(modelName)!;
    const tooBig = this.memory.tooBigError(model);
    if (tooBig) throw tooBig;
    if (this.queue.length >= this.settings.queueMax) {
      throw resourceExhausted(
        `the wait queue is full (${this.settings.queueMax} requests waiting for models to load); retry in a few seconds or raise placement.queue_max`,
        2,
      );
    }
    this.enqueue(waiterId, modelName, kind, Math.min(deadlineMs, this.clock.now() + this.settings.queueTimeoutMs), excludeRunners);
    this.reconcile();
  }

  /** The caller gave up waiting (cancelled or disconnected). */
  cancel(waiterId: string): void {
    const index = this.queue.findIndex((waiter) => waiter.id === waiterId);
    if (index === -1) return;
    const [waiter] = this.queue.splice(index, 1);
    this.publish("dequeued", waiter!.model, "cancelled");
    this.reconcile();
  }

  release(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    if (!lease) return;
    this.leases.delete(leaseId);
    const runner = this.runners.get(lease.runnerId);
    runner?.leases.delete(leaseId);
    const model = this.models.get(lease.model);
    if (model) model.lastUsedMs = this.clock.now();
    this.reconcile();
  }

  pin(name: string, pinned: boolean): ModelInfo {
    const model = this.models.get(this.resolve(name))!;
    model.pinned = pinned;
    this.publish(pinned ? "pinned" : "unpinned", model.catalog.config.name, "admin");
    if (pinned && this.replicasOf(model.catalog.config.name).length === 0) {
      this.enqueue(`pin:${model.catalog.config.name}:${this.clock.now()}`, model.catalog.config.name, "load", Number.POSITIVE_INFINITY, new Set());
    }
    this.reconcile();
    return this.modelInfo(model);
  }

  /** Unloads a model as soon as its streams end. */
  unload(name: string): ModelInfo {
    const model = this.models.get(this.resolve(name))!;
    if (model.pinned) throw failedPrecondition(`model "${model.catalog.config.name}" is pinned; unpin it first (PinModel pinned=false)`);
    model.unloadRequested = true;
    this.reconcile();
    return this.modelInfo(model);
  }

  // ---- runner events --------------------------------------------------------

  runnerConnected(hello: RunnerReady): void {
    let runner = this.runners.get(hello.runnerId);
    if (!runner) {
      // A runner from before a placement restart: adopt it with what it has loaded.
      runner = this.newRunnerRecord(hello.runnerId);
      this.runners.set(runner.id, runner);
    }
    const fresh = runner.state === "starting" && !hello.loadedModel;
    runner.registered = true;
    runner.pid = hello.pid;
    runner.address = hello.address;
    runner.rssBytes = hello.rssBytes;
    const adopted = hello.loadedModel ? this.models.get(hello.loadedModel) : undefined;
    if (adopted) {
      runner.state = "ready";
      runner.model = hello.loadedModel;
      runner.baseBytes = Math.max(0, hello.rssBytes - hello.loadedModelBytes);
      runner.initialBaseBytes = runner.baseBytes;
      adopted.measuredBytes ??= hello.loadedModelBytes;
      this.publish("loaded", hello.loadedModel, "runner re-registered", hello.loadedModelBytes, runner.id);
    } else {
      if (hello.loadedModel) this.effects.sendToRunner(runner.id, { command: { $case: "unload", value: { model: hello.loadedModel } } });
      runner.state = "spare";
      runner.model = undefined;
      if (fresh) {
        runner.baseBytes = hello.rssBytes;
        runner.initialBaseBytes = hello.rssBytes;
        this.memory.learnRunnerBase(hello.rssBytes);
      }
      this.publish("runner_started", "", "", hello.rssBytes, runner.id);
    }
    this.consecutiveRunnerCrashes = 0;
    this.reconcile();
  }

  runnerProgress(runnerId: string, progress: number): void {
    const runner = this.runners.get(runnerId);
    if (runner?.state !== "loading" || !runner.model) return;
    for (const waiter of this.queue) if (waiter.model === runner.model) this.effects.notifyLoading(waiter.id, runner.model, progress);
  }

  runnerLoaded(runnerId: string, loaded: ModelLoaded): void {
    const runner = this.runners.get(runnerId);
    const model = this.models.get(loaded.model);
    if (!runner || !model || runner.model !== loaded.model) return;
    runner.state = "ready";
    runner.rssBytes = loaded.rssBytes;
    model.measuredBytes = loaded.measuredBytes;
    model.reloadCostMs = loaded.loadMs;
    model.loads++;
    model.consecutiveLoadFailures = 0;
    model.prefetched = false;
    const now = this.clock.now();
    model.lastUsedMs = now;
    this.policyState = this.policy.onAccess(this.policyState, this.accessed(model), now);
    for (const waiter of this.queue) if (waiter.model === loaded.model) this.effects.notifyLoading(waiter.id, loaded.model, 1);
    this.publish("loaded", loaded.model, `${Math.round(loaded.loadMs)} ms`, loaded.measuredBytes, runnerId);
    this.effects.learned(loaded.model, this.learnedFacts(model));
    this.reconcile();
  }

  runnerLoadFailed(runnerId: string, modelName: string, reason: string): void {
    const runner = this.runners.get(runnerId);
    const model = this.models.get(modelName);
    if (!runner || runner.model !== modelName) return;
    runner.state = "spare";
    runner.model = undefined;
    this.publish("load_failed", modelName, reason, 0, runnerId);
    if (model) {
      this.rejectWaitersOf(modelName, failedPrecondition(`model "${modelName}" failed to load: ${reason}. Check the file at ${model.catalog.config.path}`));
    }
    this.reconcile();
  }

  runnerUnloaded(runnerId: string, rssBytes: number): void {
    const runner = this.runners.get(runnerId);
    if (!runner || runner.state !== "unloading") return;
    const modelName = runner.model ?? "";
    runner.model = undefined;
    runner.rssBytes = rssBytes;
    this.publish("unloaded", modelName, runner.unloadReason, rssBytes, runnerId);
    // Unloading must really free memory: a runner that kept it is ended instead.
    // Against the size at registration, so that small retentions cannot add up swap after swap.
    const slack = Math.max(64 * 1024 * 1024, runner.initialBaseBytes * 0.25);
    if (rssBytes > runner.initialBaseBytes + slack) {
      this.stopRunner(runner, true);
    } else {
      runner.state = "spare";
      runner.baseBytes = rssBytes; // what it really holds now, retained heap included
    }
    this.reconcile();
  }

  runnerHeartbeat(runnerId: string, rssBytes: number): void {
    const runner = this.runners.get(runnerId);
    if (runner) runner.rssBytes = rssBytes;
  }

  runnerEstimate(modelName: string, bytes: number, error: string): void {
    const model = this.models.get(modelName);
    if (!model) return;
    model.estimating = false;
    if (error) {
      this.rejectWaitersOf(modelName, failedPrecondition(`cannot read model "${modelName}" at ${model.catalog.config.path}: ${error}`));
    } else {
      model.estimatedBytes = bytes;
      this.effects.learned(modelName, this.learnedFacts(model));
      const tooBig = this.memory.tooBigError(model);
      if (tooBig) this.rejectWaitersOf(modelName, tooBig);
    }
    this.reconcile();
  }

  runnerExited(runnerId: string, exitCode: number | null): void {
    const runner = this.runners.get(runnerId);
    if (!runner) return;
    this.runners.delete(runnerId);
    for (const leaseId of runner.leases) this.leases.delete(leaseId);
    const now = this.clock.now();
    const expected = runner.state === "stopping";
    if (!expected) {
      this.consecutiveRunnerCrashes++;
      const backoff = Math.min(30_000, 250 * 2 ** Math.min(this.consecutiveRunnerCrashes - 1, 7));
      this.spawnBackoffUntilMs = now + backoff;
    }
    // Estimates sent to this runner are lost with it; they are asked again.
    for (const model of this.models.values()) model.estimating = false;
    const modelName = runner.model;
    if (!runner.registered && this.consecutiveRunnerCrashes >= this.settings.maxLoadAttempts) {
      // Runners die before they even register: nothing queued for a cold model can be served.
      for (const waiter of [...this.queue]) {
        if (this.replicasOf(waiter.model).some((replica) => replica.state === "ready")) continue;
        this.removeWaiter(waiter);
        this.effects.reject(waiter.id, unavailable(`runner processes exit at start (${this.consecutiveRunnerCrashes} in a row); check the runner logs and the node-llama-cpp build`, 10));
      }
    }
    if (modelName && runner.state === "loading") {
      const model = this.models.get(modelName);
      if (model && ++model.consecutiveLoadFailures >= this.settings.maxLoadAttempts) {
        model.consecutiveLoadFailures = 0;
        this.rejectWaitersOf(modelName, unavailable(`runners crashed ${this.settings.maxLoadAttempts} times loading "${modelName}"; check the model file and the runner logs`, 5));
      }
    }
    this.publish("runner_exited", modelName ?? "", expected ? "stopped" : `crashed (exit code ${exitCode})`, 0, runnerId);
    this.reconcile();
  }

  /** Timers: deadlines, idle TTLs, fairness bounds, spawn backoff. */
  tick(): void {
    this.reconcile();
  }

  /** When tick() should next be called; undefined when nothing is timed. */
  nextWakeMs(): number | undefined {
    const now = this.clock.now();
    let next = Number.POSITIVE_INFINITY;
    // Only moments still ahead: a passed one has been acted on (or waits for an event).
    const consider = (at: number) => {
      if (at > now) next = Math.min(next, at);
    };
    for (const waiter of this.queue) {
      consider(waiter.deadlineMs);
      consider(waiter.enqueuedMs + this.settings.fairnessMs);
    }
    for (const runner of this.runners.values()) {
      if (runner.state !== "ready" || !runner.model) continue;
      const model = this.models.get(runner.model)!;
      const ttl = model.catalog.config.ttlMs;
      if (ttl !== undefined && !model.pinned) consider(model.lastUsedMs + ttl);
    }
    consider(this.spawnBackoffUntilMs);
    return Number.isFinite(next) ? next : undefined;
  }

  // ---- the one decision loop ---------------------------------------------------

  private reconcile(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    this.expireWaiters(now);
    this.enforceBudget(now);
    this.grantLeases(now);
    this.planLoads(now);
    this.keepMinReplicas(now);
    this.unloadIdle(now);
    this.maintainSpares(now);
    this.notifyPositions();
  }

  private expireWaiters(now: number): void {
    for (const waiter of [...this.queue]) {
      if (waiter.deadlineMs > now) continue;
      this.removeWaiter(waiter);
      const waited = Math.round(now - waiter.enqueuedMs);
      this.effects.reject(
        waiter.id,
        deadlineExceeded(`waited ${waited} ms for model "${waiter.model}" to become resident; retry later, raise the deadline, or free memory (UnloadModel)`),
      );
    }
  }

  private grantLeases(now: number): void {
    // A request for a cold model that waited past the fairness bound becomes a barrier:
    // requests queued behind it get no new streams, so busy models drain and can be evicted.
    let barrier = false;
    for (const waiter of [...this.queue]) {
      if (!this.queue.includes(waiter)) continue; // served or failed by an effect meanwhile
      const model = this.models.get(waiter.model)!;
      const replicas = this.replicasOf(waiter.model);
      const ready = replicas.filter((runner) => runner.state === "ready");
      if (barrier) continue;
      if (replicas.length === 0 && now - waiter.enqueuedMs >= this.settings.fairnessMs) barrier = true;
      if (waiter.kind === "load") {
        if (ready.length === 0) continue;
        this.removeWaiter(waiter);
        this.effects.loadDone(waiter.id, waiter.model, model.reloadCostMs ?? 0);
        continue;
      }
      const capacity = model.catalog.config.sequences;
      const views = ready.map((runner) => ({ id: runner.id, outstanding: runner.leases.size, capacity }));
      // Runners that failed this request are avoided, unless no other replica can come.
      const noOtherReplica = ready.length >= model.catalog.config.replicas.max && ready.every((runner) => waiter.excludeRunners.has(runner.id));
      const chosen = pickReplica(availableReplicas(views, noOtherReplica ? new Set() : waiter.excludeRunners));
      if (!chosen) continue;
      const runner = this.runners.get(chosen.id)!;
      this.removeWaiter(waiter);
      const leaseId = `lease-${++this.leaseSerial}`;
      this.leases.set(leaseId, { id: leaseId, model: waiter.model, runnerId: runner.id });
      runner.leases.add(leaseId);
      model.lastUsedMs = now;
      model.useCount++;
      this.policyState = this.policy.onAccess(this.policyState, this.accessed(model), now);
      const loadMs = waiter.loadStartedMs === undefined ? 0 : Math.max(0, now - waiter.loadStartedMs);
      const config = model.catalog.config;
      this.effects.grant(waiter.id, {
        leaseId,
        model: waiter.model,
        runnerId: runner.id,
        runnerAddress: runner.address,
        queueMs: Math.max(0, now - waiter.enqueuedMs - loadMs),
        loadMs,
        contextSize: config.contextSize,
        defaultSampling: {
          temperature: config.sampling.temperature,
          topK: config.sampling.topK,
          topP: config.sampling.topP,
          minP: config.sampling.minP,
          repeatPenalty: config.sampling.repeatPenalty,
          stop: [],
          ignoreEos: false,
        },
      });
    }
  }

  private planLoads(now: number): void {
    const considered = new Set<string>();
    let coldLoadBlocked = false;
    for (const waiter of [...this.queue]) {
      if (considered.has(waiter.model) || !this.queue.includes(waiter)) continue;
      considered.add(waiter.model);
      const model = this.models.get(waiter.model)!;
      const replicas = this.replicasOf(waiter.model);
      if (replicas.some((runner) => runner.state === "loading")) continue;
      const ready = replicas.filter((runner) => runner.state === "ready");
      if (ready.length > 0) {
        // All replicas are busy: add one when memory allows without evicting.
        if (ready.length < model.catalog.config.replicas.max && !coldLoadBlocked) this.tryLoad(model, waiter, now, false);
        continue;
      }
      if (replicas.length > 0 || coldLoadBlocked) continue; // unloading: it comes back cold first
      if (footprint(model) === undefined) {
        this.requestEstimate(model);
        coldLoadBlocked = true;
        continue;
      }
      if (!this.tryLoad(model, waiter, now, true)) {
        coldLoadBlocked = true; // later cold models wait their turn: no overtaking for memory
        if (this.settings.prefetch && !model.prefetched) {
          model.prefetched = true;
          this.effects.prefetch(model.catalog.config.path);
        }
      }
    }
  }

  /** Starts a load when memory and a runner allow, or prepares one (evicts, spawns); true when it started. */
  private tryLoad(model: ModelRecord, waiter: WaiterRecord, now: number, mayEvict: boolean): boolean {
    const need = this.memory.accountedBytes(model);
    const spare = [...this.runners.values()].find((runner) => runner.state === "spare" && runner.registered);
    const starting = [...this.runners.values()].some((runner) => runner.state === "starting");
    const newRunnerBytes = spare || starting ? 0 : this.memory.runnerBaseBytes();
    const free = this.settings.budgetBytes - this.memory.committedBytes();
    if (need + newRunnerBytes <= free) {
      if (spare) {
        this.startLoad(spare, model, now);
        return true;
      }
      if (!starting) this.spawnRunner(now);
      return false;
    }
    if (need + newRunnerBytes <= free + this.memory.bytesBeingFreed()) return false;
    if (!mayEvict) return false;
    if (this.unloadIdleExtraReplica()) return false;

    // Evicting frees a runner that then loads this model: no new runner is needed. With a
    // spare already there, a victim's runner becomes surplus and is stopped too, so its
    // own memory counts as freed with the model (residentModels includes it).
    const protectQueued = now - waiter.enqueuedMs < this.settings.fairnessMs;
    const withRunners = spare !== undefined;
    const resident = this.residentModels(protectQueued, withRunners);
    const heldByResident = withRunners ? resident.reduce((sum, entry) => sum + entry.runnerBytes, 0) : 0;
    const policyBudget = this.settings.budgetBytes - (this.memory.runnerOverheadBytes() - heldByResident) - this.memory.bytesBeingFreed();
    const request = { needBytes: need, budgetBytes: policyBudget, resident, nowMs: now, minResidencyMs: this.settings.minResidencyMs };
    let decision = this.policy.decide(this.policyState, request);
    if (decision.kind === "fits") {
      // The model fits but no runner can be started beside it: free one by evicting the
      // policy's cheapest model (its runner then loads this one).
      const free = policyBudget - resident.reduce((sum, entry) => sum + entry.bytes, 0);
      decision = this.policy.decide(this.policyState, { ...request, needBytes: Math.max(need, free + 1) });
    }
    if (decision.kind !== "evict") {
      // A spare that kept memory from an earlier model (heap it did not return) is replaced
      // by a fresh process: its exit gives that memory back.
      const retaining = [...this.runners.values()].find(
        (runner) => runner.state === "spare" && runner.registered && runner.baseBytes > runner.initialBaseBytes + RETAINED_SLACK_BYTES,
      );
      if (retaining) {
        this.stopRunner(retaining, false);
        return false;
      }
      const pinned = this.pinnedHoldBytes();
      if (need + this.memory.runnerBaseBytes() > this.settings.budgetBytes - pinned) {
        this.rejectWaitersOf(
          model.catalog.config.name,
          failedPrecondition(
            `model "${model.catalog.config.name}" needs about ${formatBytes(need)} but pinned models hold ${formatBytes(pinned)} of the ` +
              `${formatBytes(this.settings.budgetBytes)} budget; unpin a model (PinModel pinned=false) or raise budget`,
          ),
        );
      }
      return false;
    }
    this.evict(decision.victims, `evicted by ${this.policy.name} for ${model.catalog.config.name}`);
    return false;
  }

  private evict(victims: readonly string[], reason: string): void {
    for (const victim of victims) {
      const victimModel = this.models.get(victim)!;
      victimModel.evictions++;
      for (const runner of this.replicasOf(victim)) {
        if (runner.state === "ready" && runner.leases.size === 0) {
          this.beginUnload(runner, reason);
          this.publish("evicted", victim, reason, this.memory.accountedBytes(victimModel), runner.id);
        }
      }
    }
    this.policyState = this.policy.onEvict(this.policyState, victims);
  }

  /**
   * A load can measure more than its estimate. When that pushes the committed bytes
   * over the budget, idle models are evicted at once to get back under it.
   */
  private enforceBudget(now: number): void {
    const overshoot = this.memory.committedBytes() - this.memory.bytesBeingFreed() - this.settings.budgetBytes;
    if (overshoot <= 0) return;
    const resident = this.residentModels(true, false);
    const residentBytes = resident.reduce((sum, entry) => sum + entry.bytes, 0);
    const decision = this.policy.decide(this.policyState, {
      needBytes: 0,
      budgetBytes: residentBytes - overshoot,
      resident,
      nowMs: now,
      minResidencyMs: 0,
    });
    if (decision.kind === "evict") this.evict(decision.victims, `over budget by ${formatBytes(overshoot)} after a load measured more than estimated`);
  }

  /** Memory that no eviction can free: pinned models and the runners holding them. */
  private pinnedHoldBytes(): number {
    let total = 0;
    for (const runner of this.runners.values()) {
      const model = runner.model ? this.models.get(runner.model) : undefined;
      if (model?.pinned) total += runner.baseBytes + this.memory.accountedBytes(model);
    }
    return total;
  }

  /** A resident model with replicas.min > 1 gets its other replicas when memory allows (never by evicting). */
  private keepMinReplicas(now: number): void {
    for (const model of this.models.values()) {
      const name = model.catalog.config.name;
      const replicas = this.replicasOf(name);
      if (!replicas.some((runner) => runner.state === "ready") || replicas.some((runner) => runner.state === "loading")) continue;
      const serving = replicas.filter((runner) => runner.state === "ready").length;
      if (serving >= model.catalog.config.replicas.min) continue;
      const spare = [...this.runners.values()].find((runner) => runner.state === "spare" && runner.registered);
      if (spare && this.memory.accountedBytes(model) <= this.settings.budgetBytes - this.memory.committedBytes()) this.startLoad(spare, model, now);
    }
  }

  private unloadIdle(now: number): void {
    for (const runner of this.runners.values()) {
      if (runner.state !== "ready" || !runner.model || runner.leases.size > 0) continue;
      const model = this.models.get(runner.model)!;
      if (this.queue.some((waiter) => waiter.model === runner.model)) continue;
      const ttl = model.catalog.config.ttlMs;
      if (model.unloadRequested) {
        this.beginUnload(runner, "admin unload");
      } else if (!model.pinned && ttl !== undefined && now - model.lastUsedMs >= ttl) {
        this.beginUnload(runner, "idle ttl");
      }
    }
    for (const model of this.models.values()) {
      if (model.unloadRequested && !this.replicasOf(model.catalog.config.name).some((runner) => runner.state === "ready")) {
        model.unloadRequested = false;
      }
    }
  }

  private maintainSpares(now: number): void {
    const spares = [...this.runners.values()].filter((runner) => runner.state === "spare" || runner.state === "starting");
    // While a cold model waits, one spare is kept to load it (and answer its estimate).
    const loadsWanted = this.queue.some((waiter) => !this.replicasOf(waiter.model).some((runner) => runner.state === "ready"));
    const allowed = loadsWanted ? Math.max(1, this.settings.spareRunners) : this.settings.spareRunners;
    if (spares.length > allowed) {
      for (const extra of spares.slice(allowed)) if (extra.state === "spare") this.stopRunner(extra, false);
      return;
    }
    // A replacement spare starts after a load, not during it: on a small box its start-up
    // would take CPU from the load on the request path.
    const loading = [...this.runners.values()].some((runner) => runner.state === "loading");
    if (spares.length < this.settings.spareRunners && now >= this.spawnBackoffUntilMs && !loading) {
      if (this.memory.committedBytes() + this.memory.runnerBaseBytes() <= this.settings.budgetBytes) this.spawnRunner(now);
    }
  }

  // ---- actions ----------------------------------------------------------------

  private startLoad(runner: RunnerRecord, model: ModelRecord, now: number): void {
    const config = model.catalog.config;
    runner.state = "loading";
    runner.model = config.name;
    runner.loadStartedMs = now;
    for (const waiter of this.queue) {
      if (waiter.model !== config.name) continue;
      waiter.loadStartedMs ??= now;
      this.effects.notifyLoading(waiter.id, config.name, 0);
    }
    const overcommitted = config.allowOvercommit && (footprint(model) ?? 0) > this.memory.accountedBytes(model);
    this.publish("loading", config.name, overcommitted ? `overcommitted: ${formatBytes(footprint(model)!)} served from mmap and swap` : "", this.memory.accountedBytes(model), runner.id);
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
          warmUp: true,
          useMmap: config.allowOvercommit,
        },
      },
    });
  }

  private beginUnload(runner: RunnerRecord, reason: string): void {
    runner.state = "unloading";
    runner.unloadReason = reason;
    this.effects.sendToRunner(runner.id, { command: { $case: "unload", value: { model: runner.model ?? "" } } });
  }

  private spawnRunner(now: number): void {
    if (now < this.spawnBackoffUntilMs) return; // nextWakeMs() wakes us when the backoff ends
    const runner = this.newRunnerRecord(`${this.runnerIdPrefix}${++this.runnerSerial}`);
    this.runners.set(runner.id, runner);
    this.effects.spawnRunner(runner.id);
  }

  private stopRunner(runner: RunnerRecord, kill: boolean): void {
    runner.state = "stopping";
    if (kill) this.effects.killRunner(runner.id);
    else this.effects.sendToRunner(runner.id, { command: { $case: "shutdown", value: {} } });
  }

  private requestEstimate(model: ModelRecord): void {
    if (model.estimating) return;
    const runner = [...this.runners.values()].find((candidate) => candidate.registered && candidate.state !== "stopping");
    if (!runner) {
      if (![...this.runners.values()].some((candidate) => candidate.state === "starting")) this.spawnRunner(this.clock.now());
      return;
    }
    model.estimating = true;
    const config = model.catalog.config;
    this.effects.sendToRunner(runner.id, {
      command: { $case: "estimate", value: { requestId: config.name, path: config.path, contextSize: config.contextSize, sequences: config.sequences } },
    });
  }

  /** Idle extra replicas go first when memory is needed. */
  private unloadIdleExtraReplica(): boolean {
    for (const model of this.models.values()) {
      const ready = this.replicasOf(model.catalog.config.name).filter((runner) => runner.state === "ready");
      const idle = ready.find((runner) => runner.leases.size === 0);
      if (ready.length > Math.max(1, model.catalog.config.replicas.min) && idle) {
        this.beginUnload(idle, "idle extra replica");
        return true;
      }
    }
    return false;
  }

  /** Models holding memory, as the policy sees them; `withRunners` adds their runners' own bytes. */
  private residentModels(protectQueued: boolean, withRunners: boolean): (ResidentModel & { runnerBytes: number })[] {
    const resident: (ResidentModel & { runnerBytes: number })[] = [];
    for (const model of this.models.values()) {
      const name = model.catalog.config.name;
      const replicas = this.replicasOf(name).filter((runner) => runner.state === "ready" || runner.state === "loading");
      if (replicas.length === 0) continue;
      const loading = replicas.some((runner) => runner.state === "loading");
      const queued = protectQueued ? this.queue.filter((waiter) => waiter.model === name).length : 0;
      // Queued work counts as a lease (anti-thrash) until a cold request has waited past the fairness bound.
      const leases = replicas.reduce((sum, runner) => sum + runner.leases.size, 0) + queued + (loading ? 1 : 0);
      const runnerBytes = withRunners ? replicas.reduce((sum, runner) => sum + runner.baseBytes, 0) : 0;
      resident.push({
        name,
        runnerBytes,
        bytes: this.memory.accountedBytes(model) * replicas.length + runnerBytes,
        pinned: model.pinned,
        leases,
        loadedAtMs: Math.max(...replicas.map((runner) => runner.loadStartedMs)),
        lastUsedMs: model.lastUsedMs,
        useCount: model.useCount,
        reloadCostMs: model.reloadCostMs ?? 1000,
        priority: model.catalog.config.priority,
      });
    }
    return resident;
  }

  // ---- helpers ----------------------------------------------------------------------

  private enqueue(id: string, model: string, kind: WaiterKind, deadlineMs: number, excludeRunners: ReadonlySet<string>): void {
    this.queue.push({ id, kind, model, enqueuedMs: this.clock.now(), deadlineMs, excludeRunners, lastPosition: 0, loadStartedMs: undefined });
    this.publish("queued", model, kind, 0);
  }

  private removeWaiter(waiter: WaiterRecord): void {
    const index = this.queue.indexOf(waiter);
    if (index !== -1) this.queue.splice(index, 1);
  }

  private rejectWaitersOf(modelName: string, error: ReturnType<typeof failedPrecondition>): void {
    for (const waiter of [...this.queue]) {
      if (waiter.model !== modelName) continue;
      this.removeWaiter(waiter);
      this.effects.reject(waiter.id, error);
    }
  }

  private notifyPositions(): void {
    this.queue.forEach((waiter, index) => {
      if (waiter.lastPosition === index + 1) return;
      waiter.lastPosition = index + 1;
      this.effects.notifyQueued(waiter.id, waiter.model, index + 1);
    });
  }

  private replicasOf(modelName: string): RunnerRecord[] {
    return [...this.runners.values()].filter((runner) => runner.model === modelName);
  }

  private newRunnerRecord(id: string): RunnerRecord {
    return {
      id,
      state: "starting",
      pid: 0,
      address: "",
      model: undefined,
      leases: new Set(),
      rssBytes: 0,
      baseBytes: this.memory.runnerBaseBytes(),
      initialBaseBytes: this.memory.runnerBaseBytes(),
      loadStartedMs: 0,
      unloadReason: "",
      registered: false,
    };
  }

  private accessed(model: ModelRecord) {
    return {
      name: model.catalog.config.name,
      bytes: this.memory.accountedBytes(model),
      reloadCostMs: model.reloadCostMs ?? 1000,
      priority: model.catalog.config.priority,
    };
  }

  private learnedFacts(model: ModelRecord) {
    return {
      measuredBytes: model.measuredBytes,
      estimatedBytes: model.estimatedBytes,
      loadMs: model.reloadCostMs,
      fileBytes: model.catalog.fileBytes,
      fileMtimeMs: model.catalog.fileMtimeMs,
    };
  }

  private publish(kind: string, model: string, reason: string, bytes = 0, runnerId = ""): void {
    this.effects.publish({ timeUnixMs: this.clock.now(), kind, model, reason, bytes, queueDepth: this.queue.length, runnerId });
  }

  // ---- read side --------------------------------------------------------------------

  listModels(): ModelInfo[] {
    return [...this.models.values()].map((model) => describeModel(model, this.replicasOf(model.catalog.config.name), this.queuedFor(model.catalog.config.name)));
  }

  modelInfo(model: ModelRecord): ModelInfo {
    return describeModel(model, this.replicasOf(model.catalog.config.name), this.queuedFor(model.catalog.config.name));
  }

  status(): StatusResponse {
    return describeStatus(this.clock.now(), this.memory, this.policy.name, this.models, this.runners, (name) => this.queuedFor(name));
  }

  private queuedFor(modelName: string): number {
    return this.queue.filter((waiter) => waiter.model === modelName).length;
  }
}
