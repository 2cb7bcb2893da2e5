import { deadlineExceeded, failedPrecondition } from "../../common/errors.js";
import { formatBytes } from "../../common/format-bytes.js";
import { chooseRunnerForLoad, type LoadTarget, type RunnerSlot } from "./choose-runner.js";
import type { PlacementAction, PlacementView } from "./placement-actions.js";
import { totalBytes, type EvictionRequest, type ResidentModel } from "./policies/eviction-policy.js";
import { downloadStep, waitsForFile } from "./download-step.js";
import { availableReplicas, pickReplica } from "./replica-picker.js";
import { footprint, idleExpiresAtMs, runnerLeases, type HostedModel, type ModelRecord, type RunnerRecord, type WaiterRecord } from "./records.js";

/** Memory a runner may keep above its size at registration before it is recycled to make room. */
const RETAINED_SLACK_BYTES = 8 * 1024 * 1024;

/** A held lease parked this long with no stream is asked back (its holder acquires again when it needs one). */
export const PARKED_LEASE_MAX_IDLE_MS = 30_000;

/**
 * Placement's one decision step: from the current picture to the next actions. Pure.
 * The steps run in priority order and the first that has something to do answers; the core
 * applies its actions and asks again until nothing is left to do. Invariants:
 * - a load starts only when committed bytes + its footprint (+ a new runner's) fit the budget,
 *   and, with a GPU budget (discrete GPU, gpu_budget), its GPU bytes fit that budget too;
 * - a model with leases, queued work (within the fairness bound), or pinned is never evicted;
 * - held (parked) leases are leases: they are revoked, and their release awaited, before
 *   their model can leave, while a request waits for memory (every parked lease) or for a
 *   slot of their model (so that waiting work is never overtaken by streams that skip the queue);
 * - concurrent requests for one cold model share one load.
 */
export function planStep(view: PlacementView): PlacementAction[] {
  for (const step of [expireWaiters, enforceBudget, grantLeases, reclaimParkedLeases, planLoads, keepMinReplicas, unloadIdle, maintainRunners]) {
    const actions = step(view);
    if (actions.length > 0) return actions;
  }
  return [];
}

/** A replica: one model in one runner. */
interface Replica {
  runner: RunnerRecord;
  hosted: HostedModel;
}

export function replicasOf(view: PlacementView, model: string): Replica[] {
  const replicas: Replica[] = [];
  for (const runner of view.runners.values()) {
    const hosted = runner.hosted.get(model);
    if (hosted) replicas.push({ runner, hosted });
  }
  return replicas;
}

const isServing = (replica: Replica) => replica.hosted.state === "ready" && replica.runner.state === "ready";

function expireWaiters(view: PlacementView): PlacementAction[] {
  return view.queue.expired(view.nowMs).map((waiter) => {
    const waitedMs = Math.round(view.nowMs - waiter.enqueuedMs);
    const model = view.models.get(waiter.model)!;
    const file = model.file;
    let why: string;
    if (file.state === "downloading") {
      why = `waited ${waitedMs} ms for model "${waiter.model}" to download (${formatBytes(file.bytes)}${file.totalBytes > 0 ? ` of ${formatBytes(file.totalBytes)}` : ""} so far); the download goes on: retry later, or pull it first (modelswap pull)`;
    } else if (waitsForFile(file, model.catalog.config.source !== undefined)) {
      why = `waited ${waitedMs} ms for model "${waiter.model}" to start downloading: all ${view.settings.maxDownloads} download slots are taken (placement.max_downloads); retry later, or pull it first (modelswap pull)`;
    } else {
      why = `waited ${waitedMs} ms for model "${waiter.model}" to become resident; retry later, raise the deadline, or free memory (UnloadModel)`;
    }
    return { kind: "reject", waiterId: waiter.id, error: deadlineExceeded(why) };
  });
}

/**
 * A load can measure more than its estimate. When that pushes the committed bytes over the
 * budget (or the GPU bytes over gpu_budget), idle models are evicted at once to get back
 * under it, chosen for the memory that is over.
 */
function enforceBudget(view: PlacementView): PlacementAction[] {
  const { memory, settings } = view;
  const overshoot = memory.committedBytes() - memory.bytesBeingFreed() - settings.budgetBytes;
  const gpuOvershoot = memory.gpuBudgetBytes === undefined ? 0 : memory.committedGpuBytes() - memory.gpuBytesBeingFreed() - memory.gpuBudgetBytes;
  if (overshoot <= 0 && gpuOvershoot <= 0) return [];
  // Held leases first: the policy may then choose among every model that has no stream.
  const held = parkedLeases(view, () => true);
  if (held.length > 0) return [{ kind: "revoke_leases", leaseIds: held }];
  if (anyRevoking(view)) return [];
  // Nothing to load: the policy frees what is over, ignoring min_residency.
  const decision = view.policy.decide(view.policyState, evictionRequest(view, residentModels(view, true), 0, 0, 0));
  if (decision.kind !== "evict") return [];
  const reason = { cause: "over_budget" as const, overBytes: Math.max(0, overshoot), ...(gpuOvershoot > 0 ? { overGpuBytes: gpuOvershoot } : {}) };
  return [{ kind: "evict", victims: decision.victims, reason, forWaiter: undefined }];
}

/**
 * What the eviction policy is asked: `needBytes` (and `needGpuBytes`) must fit in the budgets
 * beside everything that is not among `resident` (runners' own memory, models loading or
 * protected, memory being freed counted as free).
 */
export function evictionRequest(view: PlacementView, resident: readonly ResidentModel[], needBytes: number, needGpuBytes: number, minResidencyMs: number): EvictionRequest {
  const { memory, settings } = view;
  const otherBytes = memory.committedBytes() - totalBytes(resident) - memory.bytesBeingFreed();
  const gpuBudgetBytes =
    memory.gpuBudgetBytes === undefined ? undefined : memory.gpuBudgetBytes - (memory.committedGpuBytes() - totalBytes(resident, "gpuBytes") - memory.gpuBytesBeingFreed());
  return { needBytes, budgetBytes: settings.budgetBytes - otherBytes, needGpuBytes, gpuBudgetBytes, resident, nowMs: view.nowMs, minResidencyMs };
}

function grantLeases(view: PlacementView): PlacementAction[] {
  const actions: PlacementAction[] = [];
  const grantedNow = new Map<HostedModel, number>();
  // A request for a cold model that waited past the fairness bound becomes a barrier:
  // requests queued behind it get no new streams, so busy models drain and can be evicted.
  for (const waiter of view.queue.all()) {
    const model = view.models.get(waiter.model)!;
    const replicas = replicasOf(view, waiter.model);
    const serving = replicas.filter(isServing);
    // A model being downloaded holds nobody up: its wait is for the network, not for memory.
    const barrier = view.queue.isBarrier(waiter, replicas.length > 0 || model.file.state !== "present", view.nowMs);
    if (waiter.kind === "load") {
      if (serving.length > 0) actions.push({ kind: "load_done", waiterId: waiter.id });
    } else {
      const capacity = model.catalog.config.sequences;
      const views = serving.map((replica) => ({ id: replica.runner.id, outstanding: replica.hosted.leases.size + (grantedNow.get(replica.hosted) ?? 0), capacity }));
      // Runners that failed this request are avoided, unless no other replica can come.
      const noOtherReplica = serving.length >= model.catalog.config.replicas.max && serving.every((replica) => waiter.excludeRunners.has(replica.runner.id));
      const chosen = pickReplica(availableReplicas(views, noOtherReplica ? new Set() : waiter.excludeRunners));
      if (chosen) {
        const hosted = serving.find((replica) => replica.runner.id === chosen.id)!.hosted;
        grantedNow.set(hosted, (grantedNow.get(hosted) ?? 0) + 1);
        actions.push({ kind: "grant", waiterId: waiter.id, runnerId: chosen.id });
      }
    }
    if (barrier) break;
  }
  return actions;
}

/**
 * Held leases placement wants back: all of them while a request waits for a model that is
 * not resident (it may need any model's memory, and must not be overtaken); a model's own
 * while a request waits for one of its slots, when it is to be unloaded, idles past its TTL,
 * or leaves its runner; any parked too long.
 */
function reclaimParkedLeases(view: PlacementView): PlacementAction[] {
  if (parkedLeases(view, () => true).length === 0) return [];
  // A request waiting for its model's file to download waits on the network, not on anyone's memory or slot.
  const waiting = view.queue.all().filter((waiter) => {
    const model = view.models.get(waiter.model);
    return model !== undefined && !waitsForFile(model.file, model.catalog.config.source !== undefined);
  });
  const slotWanted = new Set(waiting.map((waiter) => waiter.model));
  const memoryWanted = waiting.some((waiter) => !replicasOf(view, waiter.model).some((replica) => replica.hosted.state === "ready" || replica.hosted.state === "loading"));
  const leaseIds = parkedLeases(view, (runner, hosted, parkedAtMs) => {
    const model = view.models.get(hosted.model)!;
    return (
      memoryWanted ||
      slotWanted.has(hosted.model) ||
      model.unloadRequested ||
      runner.state !== "ready" ||
      hosted.state !== "ready" ||
      idleExpired(model, view.nowMs) ||
      view.nowMs - parkedAtMs >= PARKED_LEASE_MAX_IDLE_MS
    );
  });
  return leaseIds.length > 0 ? [{ kind: "revoke_leases", leaseIds }] : [];
}

/** Parked leases not yet asked back that `wanted` selects. */
function parkedLeases(view: PlacementView, wanted: (runner: RunnerRecord, hosted: HostedModel, parkedAtMs: number) => boolean): string[] {
  const leaseIds: string[] = [];
  for (const runner of view.runners.values()) {
    for (const hosted of runner.hosted.values()) {
      for (const [leaseId, parkedAtMs] of hosted.parked) if (!hosted.revoking.has(leaseId) && wanted(runner, hosted, parkedAtMs)) leaseIds.push(leaseId);
    }
  }
  return leaseIds;
}

function idleExpired(model: ModelRecord, nowMs: number): boolean {
  const expiresAtMs = idleExpiresAtMs(model);
  return expiresAtMs !== undefined && nowMs >= expiresAtMs;
}

function anyRevoking(view: PlacementView): boolean {
  for (const runner of view.runners.values()) for (const hosted of runner.hosted.values()) if (hosted.revoking.size > 0) return true;
  return false;
}

function planLoads(view: PlacementView): PlacementAction[] {
  const considered = new Set<string>();
  let coldLoadBlocked = false;
  const downloads = downloadsRunning(view);
  for (const waiter of view.queue.all()) {
    if (considered.has(waiter.model)) continue;
    considered.add(waiter.model);
    const model = view.models.get(waiter.model)!;
    const replicas = replicasOf(view, waiter.model);
    if (replicas.some((replica) => replica.hosted.state === "loading")) continue;
    const serving = replicas.filter(isServing);
    if (serving.length > 0) {
      // All replicas are busy: add one when memory allows without evicting.
      if (serving.length < model.catalog.config.replicas.max && !coldLoadBlocked) {
        const actions = placeLoad(view, model, waiter, false);
        if (actions.length > 0) return actions;
      }
      continue;
    }
    if (replicas.length === 0) {
      // A missing file is fetched first; a download takes no memory and holds no other model up.
      const download = downloadStep(model.file, model.catalog.config.source !== undefined, downloads, view.settings.maxDownloads);
      if (download === "start") return [{ kind: "start_download", model: waiter.model }];
      if (download === "wait" || download === "wait_for_slot") continue;
    }
    if (replicas.length > 0 || coldLoadBlocked) continue; // unloading: it comes back cold first
    if (footprint(model) === undefined) {
      coldLoadBlocked = true;
      const actions = askEstimate(view, model);
      if (actions.length > 0) return actions;
      continue;
    }
    const actions = placeLoad(view, model, waiter, true);
    if (actions.length > 0 && actions.some((action) => action.kind !== "prefetch")) return actions;
    // Later cold models wait their turn: no overtaking for memory.
    coldLoadBlocked = true;
    if (actions.length > 0) return actions;
  }
  return [];
}

/**
 * Where and when `model` loads for `waiter`: a load, a runner to start, memory to free (the
 * policy is asked once, for the model's bytes plus a new runner's when one is needed, and
 * its GPU bytes when the GPU has a budget), or nothing yet (memory is being freed, a runner
 * is starting). Memory is freed only in a dimension that is short: stopping a runner or
 * recycling one gives back host memory, never GPU memory. Prefetch while it waits.
 */
function placeLoad(view: PlacementView, model: ModelRecord, waiter: WaiterRecord, mayEvict: boolean): PlacementAction[] {
  const { memory, settings } = view;
  const name = model.catalog.config.name;
  const need = memory.accountedBytes(model);
  const needGpu = memory.accountedGpuBytes(model);
  const target = loadTarget(view, model);
  const newRunnerBytes = target.kind === "new_runner" ? memory.runnerBaseBytes() : 0;
  const free = memory.freeBytes();
  const freeGpu = memory.freeGpuBytes();
  if (need + newRunnerBytes <= free && needGpu <= freeGpu) {
    if (target.kind === "runner") return [{ kind: "load", model: name, runnerId: target.runnerId, forWaiter: waiter.id }];
    if (target.kind === "new_runner" && view.nowMs >= view.spawnBackoffUntilMs) return [{ kind: "spawn_runner" }];
    return [];
  }
  if (!mayEvict) return [];
  const waitForMemory = prefetchWhileWaiting(view, model);
  const hostShort = need + newRunnerBytes > free + memory.bytesBeingFreed();
  const gpuShort = needGpu > freeGpu + memory.gpuBytesBeingFreed();
  if (!hostShort && !gpuShort) return waitForMemory;
  // Cheapest memory first: an empty runner the load does not need, then an idle extra replica.
  const emptyRunner = [...view.runners.values()].find(
    (runner) => runner.state === "ready" && runner.hosted.size === 0 && runner.isolatedFor === undefined && !(target.kind === "runner" && target.runnerId === runner.id),
  );
  if (emptyRunner && hostShort) return [{ kind: "stop_runner", runnerId: emptyRunner.id, kill: false, reason: undefined }];
  const extra = idleExtraReplica(view, (replica) => hostShort || memory.modelGpuBytes(replica.hosted.model) > 0);
  if (extra) return [{ kind: "unload", model: extra.hosted.model, runnerId: extra.runner.id, reason: { cause: "extra_replica" }, forWaiter: waiter.id }];

  // Held leases asked back are released within a round trip: choose victims once they are.
  if (anyRevoking(view)) return waitForMemory;
  const resident = residentModels(view, view.queue.protectsQueuedWork(waiter, view.nowMs));
  const decision = view.policy.decide(view.policyState, evictionRequest(view, resident, need + newRunnerBytes, needGpu, settings.minResidencyMs));
  if (decision.kind === "evict") {
    return [{ kind: "evict", victims: decision.victims, reason: { cause: "evicted", policy: view.policy.name, forModel: name }, forWaiter: waiter.id }];
  }
  // A runner that kept memory from models it unloaded (heap not returned) is recycled: its exit gives it back.
  const retaining = hostShort ? retainingRunner(view) : undefined;
  if (retaining) return [{ kind: "stop_runner", runnerId: retaining.id, kill: false, reason: retaining.hosted.size > 0 ? { cause: "runner_recycled", forModel: name } : undefined }];
  const pinned = pinnedHoldBytes(view);
  if (need + memory.runnerBaseBytes() > settings.budgetBytes - pinned.bytes) {
    return rejectWaitersOf(
      view,
      name,
      `model "${name}" needs about ${formatBytes(need)} but pinned models hold ${formatBytes(pinned.bytes)} of the ` +
        `${formatBytes(settings.budgetBytes)} budget; unpin a model (PinModel pinned=false) or raise budget`,
    );
  }
  if (memory.gpuBudgetBytes !== undefined && needGpu > memory.gpuBudgetBytes - pinned.gpuBytes) {
    return rejectWaitersOf(
      view,
      name,
      `model "${name}" needs about ${formatBytes(needGpu)} of GPU memory but pinned models hold ${formatBytes(pinned.gpuBytes)} of the ` +
        `${formatBytes(memory.gpuBudgetBytes)} gpu_budget; unpin a model (PinModel pinned=false), lower gpu_layers, or raise gpu_budget`,
    );
  }
  return waitForMemory;
}

function rejectWaitersOf(view: PlacementView, model: string, message: string): PlacementAction[] {
  return view.queue.of(model).map((blocked) => ({ kind: "reject", waiterId: blocked.id, error: failedPrecondition(message) }));
}

function prefetchWhileWaiting(view: PlacementView, model: ModelRecord): PlacementAction[] {
  return view.settings.prefetch && !model.prefetched ? [{ kind: "prefetch", model: model.catalog.config.name }] : [];
}

function loadTarget(view: PlacementView, model: ModelRecord): LoadTarget {
  return chooseRunnerForLoad({ name: model.catalog.config.name, isolation: model.catalog.config.isolation }, runnerSlots(view));
}

function runnerSlots(view: PlacementView): RunnerSlot[] {
  return [...view.runners.values()]
    .filter((runner) => runner.state !== "stopping")
    .map((runner) => ({
      id: runner.id,
      ready: runner.state === "ready" && runner.registered,
      starting: runner.state === "starting",
      isolated: runner.isolatedFor !== undefined,
      models: [...runner.hosted.keys()],
    }));
}

function askEstimate(view: PlacementView, model: ModelRecord): PlacementAction[] {
  if (model.estimating) return [];
  const runner = [...view.runners.values()].find((candidate) => candidate.registered && candidate.state === "ready");
  if (runner) return [{ kind: "estimate", model: model.catalog.config.name, runnerId: runner.id }];
  const starting = [...view.runners.values()].some((candidate) => candidate.state === "starting");
  return starting || view.nowMs < view.spawnBackoffUntilMs ? [] : [{ kind: "spawn_runner" }];
}

/** A resident model with replicas.min > 1 gets its other replicas when memory allows (never by evicting). */
function keepMinReplicas(view: PlacementView): PlacementAction[] {
  for (const model of view.models.values()) {
    const name = model.catalog.config.name;
    const replicas = replicasOf(view, name);
    if (!replicas.some(isServing) || replicas.some((replica) => replica.hosted.state !== "ready")) continue;
    if (replicas.length >= model.catalog.config.replicas.min) continue;
    const need = view.memory.accountedBytes(model);
    if (view.memory.accountedGpuBytes(model) > view.memory.freeGpuBytes()) continue;
    const target = loadTarget(view, model);
    if (target.kind === "runner" && need <= view.memory.freeBytes()) return [{ kind: "load", model: name, runnerId: target.runnerId, forWaiter: undefined }];
    if (target.kind === "new_runner" && need + view.memory.runnerBaseBytes() <= view.memory.freeBytes() && view.nowMs >= view.spawnBackoffUntilMs && !anyLoading(view)) {
      return [{ kind: "spawn_runner" }];
    }
  }
  return [];
}

/** Models idle past their TTL, or asked to unload by an admin, leave once their streams end. */
function unloadIdle(view: PlacementView): PlacementAction[] {
  const actions: PlacementAction[] = [];
  for (const runner of view.runners.values()) {
    if (runner.state !== "ready") continue;
    for (const hosted of runner.hosted.values()) {
      if (hosted.state !== "ready" || hosted.leases.size > 0 || view.queue.countOf(hosted.model) > 0) continue;
      const model = view.models.get(hosted.model)!;
      if (model.unloadRequested) {
        actions.push({ kind: "unload", model: hosted.model, runnerId: runner.id, reason: { cause: "admin_unload" }, forWaiter: undefined });
      } else if (idleExpired(model, view.nowMs)) {
        actions.push({ kind: "unload", model: hosted.model, runnerId: runner.id, reason: { cause: "idle_ttl" }, forWaiter: undefined });
      }
    }
  }
  return actions;
}

/**
 * Runner processes: one warm runner always exists for shared models (a shared runner with
 * models, or an empty one), plus `spare_runners` empty ones; surplus empty runners stop.
 * A replacement starts after a load, not during it: on a small box its start-up would take
 * CPU from the load on the request path.
 */
function maintainRunners(view: PlacementView): PlacementAction[] {
  const runners = [...view.runners.values()].filter((runner) => runner.state !== "stopping");
  const empty = runners.filter((runner) => runner.hosted.size === 0 && runner.isolatedFor === undefined);
  const sharedWithModels = runners.some((runner) => runner.hosted.size > 0 && runner.isolatedFor === undefined);
  // While a cold model waits, no empty runner is stopped (it may be the one to load it), and
  // spares are not topped up (a load may need their memory; it starts the runner it needs).
  const coldWaiting = view.queue.all().some((waiter) => replicasOf(view, waiter.model).length === 0);
  const wanted = (coldWaiting ? 0 : view.settings.spareRunners) + (sharedWithModels ? 0 : 1);
  if (empty.length > wanted && !coldWaiting) {
    const surplus = empty.filter((runner) => runner.state === "ready").slice(0, empty.length - wanted);
    return surplus.map((runner) => ({ kind: "stop_runner", runnerId: runner.id, kill: false, reason: undefined }));
  }
  if (empty.length < wanted && view.nowMs >= view.spawnBackoffUntilMs && !anyLoading(view)) {
    if (view.memory.committedBytes() + view.memory.runnerBaseBytes() <= view.settings.budgetBytes) return [{ kind: "spawn_runner" }];
  }
  return [];
}

function anyLoading(view: PlacementView): boolean {
  for (const runner of view.runners.values()) for (const hosted of runner.hosted.values()) if (hosted.state === "loading") return true;
  return false;
}

/** Idle extra replicas go first when memory is needed (those that free memory that is short: `helps`). */
function idleExtraReplica(view: PlacementView, helps: (replica: Replica) => boolean): Replica | undefined {
  for (const model of view.models.values()) {
    const serving = replicasOf(view, model.catalog.config.name).filter(isServing);
    const idle = serving.find((replica) => replica.hosted.leases.size === 0 && helps(replica));
    if (serving.length > Math.max(1, model.catalog.config.replicas.min) && idle) return idle;
  }
  return undefined;
}

/** First-use downloads in progress (at most placement.max_downloads). */
function downloadsRunning(view: PlacementView): number {
  let running = 0;
  for (const model of view.models.values()) if (model.file.state === "downloading") running++;
  return running;
}

/** A runner holding memory above its size at registration, with no stream, load or pinned model in it. */
function retainingRunner(view: PlacementView): RunnerRecord | undefined {
  return [...view.runners.values()].find(
    (runner) =>
      runner.state === "ready" &&
      runner.registered &&
      runner.baseBytes > runner.initialBaseBytes + RETAINED_SLACK_BYTES &&
      runnerLeases(runner) === 0 &&
      [...runner.hosted.values()].every((hosted) => hosted.state === "ready" && !view.models.get(hosted.model)?.pinned),
  );
}

/** Memory that no eviction can free: pinned models, and the runners that hold only them (host and GPU bytes). */
function pinnedHoldBytes(view: PlacementView): { bytes: number; gpuBytes: number } {
  let bytes = 0;
  let gpuBytes = 0;
  for (const runner of view.runners.values()) {
    for (const hosted of runner.hosted.values()) {
      if (!view.models.get(hosted.model)?.pinned) continue;
      bytes += view.memory.modelBytes(hosted.model);
      gpuBytes += view.memory.modelGpuBytes(hosted.model);
    }
    if (runner.isolatedFor !== undefined && view.models.get(runner.isolatedFor)?.pinned) bytes += runner.baseBytes;
  }
  return { bytes, gpuBytes };
}

/**
 * Models holding memory, as the policy sees them. A model in a runner of its own
 * (`isolation: process`) frees that runner with it, so the runner's bytes count with it.
 */
export function residentModels(view: PlacementView, protectQueued: boolean): ResidentModel[] {
  const resident: ResidentModel[] = [];
  for (const model of view.models.values()) {
    const name = model.catalog.config.name;
    const replicas = replicasOf(view, name).filter((replica) => replica.hosted.state !== "unloading" && replica.runner.state !== "stopping");
    if (replicas.length === 0) continue;
    const loading = replicas.some((replica) => replica.hosted.state === "loading");
    const queued = protectQueued ? view.queue.countOf(name) : 0;
    // Queued work counts as a lease (anti-thrash) until a cold request has waited past the fairness bound.
    const leases = replicas.reduce((sum, replica) => sum + replica.hosted.leases.size, 0) + queued + (loading ? 1 : 0);
    const runnerBytes = replicas.reduce((sum, replica) => sum + (replica.runner.isolatedFor === name ? replica.runner.baseBytes : 0), 0);
    resident.push({
      name,
      bytes: view.memory.accountedBytes(model) * replicas.length + runnerBytes,
      gpuBytes: view.memory.accountedGpuBytes(model) * replicas.length,
      pinned: model.pinned,
      leases,
      loadedAtMs: Math.max(...replicas.map((replica) => replica.hosted.loadStartedMs)),
      lastUsedMs: model.lastUsedMs,
      useCount: model.useCount,
      reloadCostMs: model.reloadCostMs ?? 1000,
      priority: model.catalog.config.priority,
    });
  }
  return resident;
}
