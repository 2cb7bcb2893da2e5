import { existsSync } from "node:fs";
import { Metadata, type ServerDuplexStream, type ServerWritableStream } from "@grpc/grpc-js";
import { ModelswapError, toGrpcStatus, unauthenticated } from "../../common/errors.js";
import { deadlineOf } from "../../common/grpc/call-context.js";
import { unaryHandler } from "../../common/grpc/handlers.js";
import { internalCrypto } from "../../common/internal-auth/internal-crypto.js";
import { INTERNAL_METADATA, singleValue } from "../../common/internal-auth/internal-metadata.js";
import type { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import type { Logger } from "../../common/logger.js";
import type { LoadModelResponse, ResidencyEvent, WatchStatusRequest } from "../../gen/modelswap/v1/admin.js";
import { LoadingPhase } from "../../gen/modelswap/v1/inference.js";
import type { ResidencyEventRecord } from "./placement-types.js";
import { toWireEvent } from "./residency-events.js";
import { LeaseOutcome, PlacementService, type AcquireEvent, type AcquireMessage, type AcquireRequest, type Lease } from "../../gen/modelswap/v1/placement.js";
import { RunnerControlService, type RunnerCommand, type RunnerEvent } from "../../gen/modelswap/v1/runner.js";
import type { CoreDriver } from "./core-driver.js";
import type { PlacementCore } from "./placement-core.js";
import type { PlacementEffects } from "./placement-types.js";

type AcquireCall = ServerDuplexStream<AcquireMessage, AcquireEvent>;

/** How a lease (or a stream on a held lease) ended, as placement counts it; "idle": a parked lease given back. */
export type LeaseEnd = "ok" | "cancelled" | "runner_failed" | "idle";

interface PendingLoad {
  /** With the load time of the model (LoadModel's answer is completed by the service). */
  resolve: (loadMs: number) => void;
  reject: (error: ModelswapError) => void;
}

/**
 * The gRPC face of placement: Acquire/Release leases, admin calls, and the runners'
 * control streams. It translates between calls and PlacementCore events; it decides
 * nothing itself. Built in two steps without late binding: `callEffects()` (what the core
 * does to callers) exists before the core; `bind(core)` returns the services that feed it.
 */
export class PlacementGrpc {
  private serial = 0;
  private readonly acquireCalls = new Map<string, AcquireCall>();
  /** The lease each granted Acquire call holds. */
  private readonly leaseOf = new Map<AcquireCall, Lease>();
  /** The call holding each granted lease (to revoke it). */
  private readonly callOfLease = new Map<string, AcquireCall>();
  private readonly pendingLoads = new Map<string, PendingLoad>();
  private readonly controlStreams = new Map<string, ServerDuplexStream<RunnerEvent, RunnerCommand>>();
  private readonly watchers = new Set<ServerWritableStream<WatchStatusRequest, ResidencyEvent>>();

  constructor(
    private readonly logger: Logger,
    private readonly clock: { now(): number },
    private readonly hooks: {
      onEvent?: (event: ResidencyEventRecord) => void;
      onRunnerEvent?: (runnerId: string, event: RunnerEvent) => void;
      /** An Acquire call arrived (telemetry), before the core sees its request. */
      onAcquire?: (waiterId: string, call: AcquireCall, requestedModel: string, model: string) => void;
      /** An Acquire call ended by the caller before its grant, or refused at once. */
      onAcquireEnd?: (waiterId: string, outcome: "cancelled" | "rejected", error?: unknown) => void;
      /** A stream on a lease ended: the caller released or parked the lease (saying how), or went away. */
      onLeaseEnd?: (lease: Lease, outcome: Exclude<LeaseEnd, "idle">) => void;
    } = {},
  ) {}

  /** The effects that talk to callers and runners; process and file effects are added by the caller. */
  callEffects(): Pick<PlacementEffects, "sendToRunner" | "grant" | "revokeLease" | "loadDone" | "notifyQueued" | "notifyLoading" | "notifyDownloading" | "reject" | "publish"> {
    return {
      sendToRunner: (runnerId, command) => this.controlStreams.get(runnerId)?.write(command),
      grant: (waiterId, lease) => this.onGrant(waiterId, lease),
      revokeLease: (leaseId) => {
        const call = this.callOfLease.get(leaseId);
        if (call && !call.cancelled) call.write({ event: { $case: "revoke", value: {} } });
      },
      loadDone: (waiterId, _model, loadMs) => {
        const pending = this.pendingLoads.get(waiterId);
        this.pendingLoads.delete(waiterId);
        pending?.resolve(loadMs);
      },
      notifyQueued: (waiterId, model, position) => this.acquireCalls.get(waiterId)?.write({ event: { $case: "queued", value: { position, model } } }),
      notifyLoading: (waiterId, model, progress) =>
        this.acquireCalls.get(waiterId)?.write({ event: { $case: "loading", value: { model, progress, phase: LoadingPhase.LOADING_PHASE_LOADING, downloadedBytes: 0, totalBytes: 0 } } }),
      notifyDownloading: (waiterId, model, downloadedBytes, totalBytes) =>
        this.acquireCalls.get(waiterId)?.write({
          event: { $case: "loading", value: { model, progress: totalBytes > 0 ? downloadedBytes / totalBytes : 0, phase: LoadingPhase.LOADING_PHASE_DOWNLOADING, downloadedBytes, totalBytes } },
        }),
      reject: (waiterId, error) => {
        const call = this.acquireCalls.get(waiterId);
        this.acquireCalls.delete(waiterId);
        if (call && !call.cancelled) call.emit("error", toGrpcStatus(error, () => undefined));
        const pending = this.pendingLoads.get(waiterId);
        this.pendingLoads.delete(waiterId);
        pending?.reject(error);
      },
      publish: (event) => {
        this.hooks.onEvent?.(event);
        if (this.watchers.size === 0) return;
        const wire = toWireEvent(event);
        for (const watcher of this.watchers) watcher.write(wire);
      },
    };
  }

  stop(): void {
    for (const watcher of this.watchers) watcher.end();
  }

  /** Asks every connected runner to exit, including runners adopted after a restart (not our children). */
  shutdownRunners(runnerIds: Iterable<string> = this.controlStreams.keys()): void {
    for (const runnerId of runnerIds) this.controlStreams.get(runnerId)?.write({ command: { $case: "shutdown", value: {} } });
  }

  private onGrant(waiterId: string, lease: Lease): void {
    const call = this.acquireCalls.get(waiterId);
    this.acquireCalls.delete(waiterId);
    if (!call) return;
    // A call cancelled just now still has its "cancelled" handler to run: it releases this lease.
    this.leaseOf.set(call, lease);
    this.callOfLease.set(lease.leaseId, call);
    if (!call.cancelled) call.write({ event: { $case: "granted", value: lease } });
  }

  placementService(driver: CoreDriver) {
    const logger = this.logger;
    // One call per lease: `request`, then queued / loading / granted, then `release` (or the
    // caller goes away); a held lease has `park` / `resume` pairs in between, one per stream.
    const acquire = (call: AcquireCall) => {
      const waiterId = `w${++this.serial}`;
      let started = false;
      let finished = false;
      const finish = (outcome: LeaseEnd) => {
        if (finished || !started) return;
        finished = true;
        const lease = this.leaseOf.get(call);
        this.leaseOf.delete(call);
        if (lease) {
          this.callOfLease.delete(lease.leaseId);
          driver.run((core) => core.release(lease.leaseId));
          if (outcome !== "idle") this.hooks.onLeaseEnd?.(lease, outcome);
        } else if (this.acquireCalls.delete(waiterId)) {
          this.hooks.onAcquireEnd?.(waiterId, "cancelled");
          driver.run((core) => core.cancel(waiterId));
        }
      };
      const start = (request: AcquireRequest) => {
        started = true;
        this.acquireCalls.set(waiterId, call);
        this.hooks.onAcquire?.(waiterId, call, request.model, resolvedName(driver, request.model));
        // The earlier of the call's deadline and the request's (a held lease's call has none of its own).
        const deadlines = [deadlineOf(call)?.getTime(), request.waitDeadlineUnixMs > 0 ? request.waitDeadlineUnixMs : undefined].filter((at): at is number => at !== undefined);
        const deadlineMs = deadlines.length > 0 ? this.clock.now() + (Math.min(...deadlines) - Date.now()) : Number.POSITIVE_INFINITY;
        try {
          driver.run((core) => core.request(waiterId, request.model, "lease", deadlineMs, new Set(request.excludeRunners)));
        } catch (error) {
          finished = true;
          this.hooks.onAcquireEnd?.(waiterId, "rejected", error);
          this.acquireCalls.delete(waiterId);
          call.emit("error", toGrpcStatus(error, (unexpected) => logger.error("unexpected_error", { error: unexpected })));
        }
      };
      call.on("data", (message: AcquireMessage) => {
        const m = message.message;
        if (m?.$case === "request" && !started && !call.cancelled) start(m.value);
        else if (m?.$case === "release") {
          finish(leaseEnd(m.value.outcome));
          call.end();
        } else if (m?.$case === "park" || m?.$case === "resume") {
          const lease = this.leaseOf.get(call);
          if (!lease || finished) return;
          if (m.$case === "resume") return driver.run((core) => core.leaseResumed(lease.leaseId));
          driver.run((core) => core.leaseParked(lease.leaseId));
          this.hooks.onLeaseEnd?.(lease, leaseEnd(m.value.outcome) as Exclude<LeaseEnd, "idle">);
        }
      });
      call.on("end", () => {
        finish("cancelled");
        if (!call.cancelled) call.end();
      });
      call.on("cancelled", () => finish("cancelled"));
    };
    const loadModel = unaryHandler(logger, (request: { model: string }, signal) =>
      new Promise<LoadModelResponse>((resolve, reject) => {
        const waiterId = `load${++this.serial}`;
        const model = request.model;
        this.pendingLoads.set(waiterId, {
          resolve: (loadMs) => resolve({ model: driver.core.modelInfo(driver.core.models.get(driver.core.resolve(model))!), loadMs }),
          reject,
        });
        signal.addEventListener("abort", () => {
          this.pendingLoads.delete(waiterId);
          driver.run((core) => core.cancel(waiterId));
        });
        try {
          driver.run((core) => core.request(waiterId, request.model, "load", Number.POSITIVE_INFINITY));
        } catch (error) {
          this.pendingLoads.delete(waiterId);
          reject(error);
        }
      }),
    );
    const watchStatus = (call: ServerWritableStream<WatchStatusRequest, ResidencyEvent>) => {
      this.watchers.add(call);
      call.on("cancelled", () => this.watchers.delete(call));
      call.sendMetadata(new Metadata()); // headers now: the watcher knows it is subscribed before any event
    };
    return {
      definition: PlacementService,
      implementation: {
        acquire,
        loadModel,
        watchStatus,
        listModels: unaryHandler(logger, async () => ({ models: driver.core.listModels() })),
        unloadModel: unaryHandler(logger, async (request: { model: string }) => ({ model: driver.run((core) => core.unload(request.model)) })),
        pinModel: unaryHandler(logger, async (request: { model: string; pinned: boolean }) => ({ model: driver.run((core) => core.pin(request.model, request.pinned)) })),
        getStatus: unaryHandler(logger, async () => driver.core.status()),
      },
    };
  }

  /**
   * The runners' control streams. A stream is obeyed only after a mutual challenge
   * (common/internal-auth/runner-key.ts): the runner dials with its id and a nonce,
   * placement answers in its headers with a nonce and its proof, and the runner's first
   * event must be its hello carrying its own proof. Anything else is refused, so a process
   * without the runner's key cannot register, re-register a runner's id, or report.
   */
  runnerControlService(driver: CoreDriver, secret: InternalSecret) {
    const refuse = (stream: ServerDuplexStream<RunnerEvent, RunnerCommand>, problem: string) => {
      this.logger.warn("runner_refused", { problem, peer: stream.getPeer() });
      stream.emit("error", toGrpcStatus(unauthenticated(`RunnerControl/Connect is internal to modelswap (${problem}): only runners started by this placement may connect`), () => undefined));
    };
    const connect = (stream: ServerDuplexStream<RunnerEvent, RunnerCommand>) => {
      const runnerId = singleValue(stream.metadata, INTERNAL_METADATA.runnerId);
      const runnerNonce = singleValue(stream.metadata, INTERNAL_METADATA.nonce);
      if (!runnerId || !RUNNER_ID.test(runnerId) || !internalCrypto.isNonce(runnerNonce)) return refuse(stream, "no runner id and nonce");
      const key = secret.runnerKey(runnerId);
      const placementNonce = internalCrypto.nonce();
      // Headers at once: the runner checks placement's proof before it says anything.
      const headers = new Metadata();
      headers.set(INTERNAL_METADATA.nonce, placementNonce);
      headers.set(INTERNAL_METADATA.proof, key.placementProof(runnerNonce, placementNonce));
      stream.sendMetadata(headers);
      let registered = false;
      let refused = false;
      stream.on("data", (message: RunnerEvent) => {
        const event = message.event;
        if (refused || !event) return;
        if (!registered) {
          if (event.$case !== "ready" || event.value.runnerId !== runnerId || !internalCrypto.sameMac(event.value.authProof, key.runnerProof(placementNonce, runnerNonce))) {
            refused = true;
            return refuse(stream, "no valid hello");
          }
          registered = true;
          this.controlStreams.set(runnerId, stream);
        } else if (event.$case === "ready") return; // one hello per stream
        this.hooks.onRunnerEvent?.(runnerId, message);
        driver.run((core) => {
          switch (event.$case) {
            case "ready":
              return core.runnerConnected(event.value);
            case "loaded":
              return core.runnerLoaded(runnerId, event.value);
            case "failed":
              noticeFileGone(core, event.value.model);
              return core.runnerLoadFailed(runnerId, event.value.model, event.value.reason);
            case "unloaded":
              return core.runnerUnloaded(runnerId, event.value.model, event.value.rssBeforeBytes, event.value.rssBytes);
            case "progress":
              return core.runnerProgress(runnerId, event.value.model, event.value.progress);
            case "heartbeat":
              return core.runnerHeartbeat(runnerId, event.value.rssBytes);
            case "estimate":
              if (event.value.error) noticeFileGone(core, event.value.requestId);
              return core.runnerEstimate(runnerId, event.value.requestId, event.value.bytes, event.value.error, event.value.gpuBytes);
          }
        });
      });
      const gone = () => {
        if (!registered || this.controlStreams.get(runnerId) !== stream) return;
        this.controlStreams.delete(runnerId);
        driver.run((core) => core.runnerExited(runnerId, null));
      };
      stream.on("end", () => {
        gone();
        stream.end();
      });
      stream.on("error", gone);
      stream.on("cancelled", gone);
    };
    return { definition: RunnerControlService, implementation: { connect } };
  }
}

/**
 * A load or estimate failed: when the model is fetched on first use and its file is no longer
 * on disk (deleted while placement ran), the core learns so and fetches it again for the waiters
 * instead of failing them.
 */
function noticeFileGone(core: PlacementCore, modelName: string): void {
  const fetchedPath = core.fetchedPath(modelName);
  if (fetchedPath !== undefined && !existsSync(fetchedPath)) core.fileGone(modelName);
}

/** Runner ids placement makes (`r<pid>-<hex>-<n>`), bounded before they are hashed or logged. */
const RUNNER_ID = /^[\w.:-]{1,64}$/;

/** The catalog name for a name or alias; the name itself when unknown (the core refuses it next). */
function resolvedName(driver: CoreDriver, name: string): string {
  try {
    return driver.core.resolve(name);
  } catch {
    return name;
  }
}

function leaseEnd(outcome: LeaseOutcome): LeaseEnd {
  if (outcome === LeaseOutcome.LEASE_OUTCOME_OK) return "ok";
  if (outcome === LeaseOutcome.LEASE_OUTCOME_RUNNER_FAILED) return "runner_failed";
  if (outcome === LeaseOutcome.LEASE_OUTCOME_IDLE) return "idle";
  return "cancelled";
}
