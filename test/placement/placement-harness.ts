import type { ModelConfig } from "../../common/config/config-types.js";
import type { ModelswapError } from "../../common/errors.js";
import type { ResidencyEvent } from "../../gen/modelswap/v1/admin.js";
import type { Lease } from "../../gen/modelswap/v1/placement.js";
import type { RunnerCommand } from "../../gen/modelswap/v1/runner.js";
import { PlacementCore } from "../../services/placement/placement-core.js";
import type { CatalogModel, DownloadOrder, PlacementEffects, PlacementSettings, ResidencyEventRecord } from "../../services/placement/placement-types.js";
import { toWireEvent } from "../../services/placement/residency-events.js";

export const MiB = 1024 * 1024;
export const RUNNER_BASE = 50 * MiB;

export function modelConfig(name: string, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    name,
    path: `/models/${name}.gguf`,
    aliases: [],
    tasks: [],
    contextSize: 512,
    threads: 1,
    sequences: 2,
    gpu: "cpu",
    gpuLayers: 0,
    pin: false,
    preload: false,
    ttlMs: undefined,
    priority: 0,
    allowOvercommit: false,
    replicas: { min: 1, max: 1 },
    sampling: { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1 },
    forgeSizeBytes: undefined,
    isolation: "shared",
    ...overrides,
  };
}

export interface Outcome {
  lease?: Lease;
  loaded?: boolean;
  error?: ModelswapError;
  queued: number[];
  loading: number[];
  /** Download progress the waiter saw: [bytes, totalBytes]. */
  downloading: [number, number][];
}

/**
 * Drives PlacementCore with a fake clock and fake runners. Runner replies are queued
 * and delivered by settle(), never from inside an effect, as the real gRPC layer does.
 */
export class PlacementHarness {
  now = 1_000_000;
  readonly core: PlacementCore;
  readonly outcomes = new Map<string, Outcome>();
  /** Residency events as WatchStatus shows them, and as the core published them (typed). */
  readonly events: ResidencyEvent[] = [];
  readonly records: ResidencyEventRecord[] = [];
  readonly commands: { runnerId: string; command: RunnerCommand }[] = [];
  readonly spawned: string[] = [];
  readonly killed: string[] = [];
  readonly prefetched: string[] = [];
  /** Lease ids placement asked back (held leases), in order. */
  readonly revoked: string[] = [];
  /** Downloads the core ordered (the test answers them with core.downloadProgress / downloadDone / downloadFailed). */
  readonly downloads: DownloadOrder[] = [];
  /** Runner reports placement refused (report-checks.ts): "runnerId report: reason". */
  readonly rejectedReports: string[] = [];
  /** Model sizes the fake runners "measure" and "estimate" (host and GPU memory together). */
  readonly sizes = new Map<string, number>();
  /** Of those sizes, what the model takes on the GPU (0 when absent); a runner's RSS does not show it. */
  readonly gpuSizes = new Map<string, number>();
  /** When false, loads stay in progress until finishLoads() is called. */
  autoFinishLoads = true;
  /** When false, spawned runners never connect (a broken runner build). */
  runnersConnect = true;
  /** Heap a runner keeps after an unload (glibc does not return everything). */
  retainedAfterUnload = 0;
  private readonly pending: (() => void)[] = [];
  private readonly inFlightLoads: { runnerId: string; model: string }[] = [];
  private readonly connected = new Set<string>();
  /** What each fake runner holds: model -> bytes; and heap it kept after unloads. */
  private readonly held = new Map<string, Map<string, number>>();
  private readonly retained = new Map<string, number>();

  /** `missingFiles`: models whose file is not on disk yet (with a source in their config, fetched on first use). */
  constructor(models: ModelConfig[], settings: Partial<PlacementSettings> = {}, missingFiles: readonly string[] = []) {
    const effects: PlacementEffects = {
      spawnRunner: (runnerId) => {
        this.spawned.push(runnerId);
        if (!this.runnersConnect) return;
        this.pending.push(() => {
          this.connected.add(runnerId);
          this.core.runnerConnected({ runnerId, pid: 100 + this.spawned.length, address: `fake:${runnerId}`, rssBytes: RUNNER_BASE, hosted: [], authProof: "" });
        });
      },
      sendToRunner: (runnerId, command) => {
        this.commands.push({ runnerId, command });
        this.pending.push(() => this.reply(runnerId, command));
      },
      killRunner: (runnerId) => {
        this.killed.push(runnerId);
        this.pending.push(() => this.core.runnerExited(runnerId, null));
      },
      grant: (waiterId, lease) => (this.outcome(waiterId).lease = lease),
      revokeLease: (leaseId) => this.revoked.push(leaseId),
      loadDone: (waiterId) => (this.outcome(waiterId).loaded = true),
      notifyQueued: (waiterId, _model, position) => this.outcome(waiterId).queued.push(position),
      notifyLoading: (waiterId, _model, progress) => this.outcome(waiterId).loading.push(progress),
      reject: (waiterId, error) => (this.outcome(waiterId).error = error),
      publish: (event) => {
        this.records.push(event);
        this.events.push(toWireEvent(event));
      },
      prefetch: (path) => this.prefetched.push(path),
      learned: () => undefined,
      reportRejected: (runnerId, report, reason) => this.rejectedReports.push(`${runnerId} ${report}: ${reason}`),
      startDownload: (order) => this.downloads.push(order),
      notifyDownloading: (waiterId, _model, downloadedBytes, totalBytes) => this.outcome(waiterId).downloading.push([downloadedBytes, totalBytes]),
    };
    this.core = new PlacementCore(
      models.map((config): CatalogModel => (missingFiles.includes(config.name) ? { config, fileBytes: 0, fileMtimeMs: 0, fileMissing: true } : { config, fileBytes: 1, fileMtimeMs: 1 })),
      {
        budgetBytes: 500 * MiB,
        policyName: "lru",
        spareRunners: 0,
        queueMax: 16,
        queueTimeoutMs: 60_000,
        minResidencyMs: 0,
        fairnessMs: 10_000,
        prefetch: true,
        maxDownloads: 2,
        runnerBaseBytesGuess: RUNNER_BASE,
        maxLoadAttempts: 3,
        physicalBytes: 64 * 1024 * MiB,
        ...settings,
      },
      { now: () => this.now },
      effects,
    );
  }

  outcome(waiterId: string): Outcome {
    let outcome = this.outcomes.get(waiterId);
    if (!outcome) {
      outcome = { queued: [], loading: [], downloading: [] };
      this.outcomes.set(waiterId, outcome);
    }
    return outcome;
  }

  /** Delivers every queued runner reply (and the replies they cause). */
  settle(): this {
    for (let guard = 0; this.pending.length > 0; guard++) {
      if (guard > 10_000) throw new Error("placement did not settle");
      this.pending.shift()!();
    }
    return this;
  }

  start(): this {
    this.core.start();
    return this.settle();
  }

  request(waiterId: string, model: string, deadlineMs = Number.POSITIVE_INFINITY): Outcome {
    try {
      this.core.request(waiterId, model, "lease", deadlineMs);
    } catch (error) {
      this.outcome(waiterId).error = error as ModelswapError;
    }
    this.settle();
    return this.outcome(waiterId);
  }

  release(waiterId: string): this {
    const lease = this.outcome(waiterId).lease;
    if (!lease) throw new Error(`${waiterId} holds no lease`);
    this.core.release(lease.leaseId);
    return this.settle();
  }

  /** The holder keeps `waiterId`'s lease after its stream (held lease). */
  park(waiterId: string): this {
    this.core.leaseParked(this.leaseOf(waiterId));
    return this.settle();
  }

  /** A new stream starts on `waiterId`'s parked lease. */
  resume(waiterId: string): this {
    this.core.leaseResumed(this.leaseOf(waiterId));
    return this.settle();
  }

  /** Whether placement asked `waiterId`'s lease back. */
  wasRevoked(waiterId: string): boolean {
    return this.revoked.includes(this.leaseOf(waiterId));
  }

  private leaseOf(waiterId: string): string {
    const lease = this.outcome(waiterId).lease;
    if (!lease) throw new Error(`${waiterId} holds no lease`);
    return lease.leaseId;
  }

  advance(ms: number): this {
    this.now += ms;
    this.core.tick();
    return this.settle();
  }

  finishLoads(): this {
    for (const load of this.inFlightLoads.splice(0)) this.pending.push(() => this.finishLoad(load.runnerId, load.model));
    return this.settle();
  }

  crash(runnerId: string): this {
    this.core.runnerExited(runnerId, 139);
    return this.settle();
  }

  /** The runner where `model` is ready. */
  runnerOf(model: string): string | undefined {
    return this.core.status().runners.find((runner) => runner.models.some((hosted) => hosted.name === model && hosted.state === "ready"))?.id;
  }

  /** A runner with a load in progress. */
  loadingRunner() {
    return this.core.status().runners.find((runner) => runner.models.some((hosted) => hosted.state === "loading"));
  }

  /** The committed bytes the ledger charges now. */
  committed(): number {
    return this.core.memory.committedBytes();
  }

  /** The GPU bytes the ledger charges to gpu_budget now (0 when not budgeted). */
  committedGpu(): number {
    return this.core.memory.committedGpuBytes();
  }

  kinds(kind: string): string[] {
    return this.events.filter((event) => event.kind === kind).map((event) => event.model);
  }

  private reply(runnerId: string, command: RunnerCommand): void {
    if (!this.connected.has(runnerId)) return;
    const c = command.command;
    switch (c?.$case) {
      case "estimate":
        this.core.runnerEstimate(runnerId, c.value.requestId, this.sizes.get(c.value.requestId) ?? 100 * MiB, "", this.gpuSizes.get(c.value.requestId) ?? 0);
        return;
      case "load":
        if (this.autoFinishLoads) this.finishLoad(runnerId, c.value.model);
        else this.inFlightLoads.push({ runnerId, model: c.value.model });
        return;
      case "unload": {
        // The fake runner's RSS: its base, what it kept, and the models it still holds.
        const before = this.rssOf(runnerId);
        this.held.get(runnerId)?.delete(c.value.model);
        this.retained.set(runnerId, (this.retained.get(runnerId) ?? 0) + this.retainedAfterUnload);
        this.core.runnerUnloaded(runnerId, c.value.model, before, this.rssOf(runnerId));
        return;
      }
      case "shutdown":
        this.connected.delete(runnerId);
        this.core.runnerExited(runnerId, 0);
        return;
    }
  }

  private finishLoad(runnerId: string, model: string): void {
    const bytes = this.sizes.get(model) ?? 100 * MiB;
    const gpuBytes = this.gpuSizes.get(model) ?? 0;
    let held = this.held.get(runnerId);
    if (!held) this.held.set(runnerId, (held = new Map()));
    held.set(model, bytes - gpuBytes);
    const gpu = gpuBytes > 0 ? { backend: "cuda", gpuLayers: 24 } : { backend: "cpu", gpuLayers: 0 };
    this.core.runnerLoaded(runnerId, { model, measuredBytes: bytes, rssBytes: this.rssOf(runnerId), loadMs: 200, modelLoadMs: 150, contextMs: 40, warmUpMs: 10, fileBytes: bytes, gpuBytes, ...gpu });
  }

  private rssOf(runnerId: string): number {
    let rss = RUNNER_BASE + (this.retained.get(runnerId) ?? 0);
    for (const bytes of this.held.get(runnerId)?.values() ?? []) rss += bytes;
    return rss;
  }
}
