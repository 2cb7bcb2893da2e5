import type { Metadata } from "@grpc/grpc-js";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import type { Lease } from "../../gen/modelswap/v1/placement.js";
import type { PlacementEffects, ResidencyEventRecord } from "../../services/placement/placement-types.js";
import { describeUnloadReason } from "../../services/placement/residency-events.js";
import { ATTR, GEN_AI, SPAN, tracer } from "./attributes.js";
import type { PlacementMetrics } from "./placement-metrics.js";
import { extractContext } from "./propagation.js";

export interface PlacementTracingOptions {
  /**
   * Where a model file's bytes come from for a load that starts now: "page_cache" when
   * placement read the whole file into page cache beforehand (prefetch), else "unknown"
   * (Node has no mincore, so a cold read from disk cannot be told from a warm one).
   */
  loadSource(path: string): string;
  /** File size for bytes/s; 0 when unknown. */
  fileBytes(path: string): number;
  metrics?: PlacementMetrics;
}

interface Waiter {
  model: string;
  span: Span;
  context: Context;
  queueSpan: Span | undefined;
}

interface OpenLoad {
  span: Span;
  fileBytes: number;
  source: string;
}

interface OpenUnload {
  unloadSpan: Span;
  evictSpan: Span | undefined;
}

/**
 * Placement's spans. Each Acquire gets `placement.acquire` (a child of the caller's
 * context) with `queue.wait` inside. Swaps come from the core's typed residency events,
 * which name the waiter they serve, so a swap shows up inside the trace of the request
 * that needed it:
 *   placement.acquire > queue.wait | model.evict > model.unload | model.load
 * Swaps no request caused (preload, idle TTL, admin) are traces of their own. The only
 * state kept is the open spans themselves.
 */
export class PlacementTracing {
  private readonly waiters = new Map<string, Waiter>();
  private readonly loads = new Map<string, OpenLoad>();
  private readonly unloads = new Map<string, OpenUnload>();

  constructor(private readonly options: PlacementTracingOptions) {}

  // ---- the request side ------------------------------------------------------------

  /** An Acquire call arrived (before the core sees it: a load it starts at once must find it). */
  acquireStarted(waiterId: string, metadata: Metadata | undefined, requestedModel: string, model: string): void {
    const parent = extractContext(metadata);
    const span = tracer().startSpan(SPAN.acquire, { kind: SpanKind.SERVER, attributes: { [GEN_AI.requestModel]: requestedModel, [ATTR.model]: model } }, parent);
    const context = trace.setSpan(parent, span);
    const queueSpan = tracer().startSpan(SPAN.queueWait, { attributes: { [ATTR.model]: model } }, context);
    this.waiters.set(waiterId, { model, span, context, queueSpan });
  }

  queued(waiterId: string, position: number): void {
    const waiter = this.waiters.get(waiterId);
    if (!waiter) return;
    waiter.span.addEvent("queued", { [ATTR.queuePosition]: position });
    waiter.queueSpan?.setAttribute(ATTR.queuePosition, position);
  }

  /** The waiter's model started loading (or reported progress): its wait in the queue is over. */
  loading(waiterId: string): void {
    const waiter = this.waiters.get(waiterId);
    if (!waiter?.queueSpan) return;
    waiter.queueSpan.end();
    waiter.queueSpan = undefined;
  }

  granted(waiterId: string, lease: Lease): void {
    const waiter = this.waiters.get(waiterId);
    if (!waiter) return;
    this.waiters.delete(waiterId);
    waiter.queueSpan?.end();
    waiter.span.setAttributes({
      [ATTR.leaseId]: lease.leaseId,
      [ATTR.runnerId]: lease.runnerId,
      [ATTR.queueMs]: lease.queueMs,
      [ATTR.loadMs]: lease.loadMs,
      [GEN_AI.responseModel]: lease.model,
    });
    waiter.span.setStatus({ code: SpanStatusCode.OK });
    waiter.span.end();
  }

  /** The waiter was refused (deadline, load failure, queue full...) or gave up ("cancelled"). */
  ended(waiterId: string, outcome: "rejected" | "cancelled", error?: unknown): void {
    const waiter = this.waiters.get(waiterId);
    if (!waiter) return;
    this.waiters.delete(waiterId);
    const message = error instanceof Error ? error.message : outcome;
    for (const span of [waiter.queueSpan, waiter.span]) {
      if (!span) continue;
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      span.setAttribute("modelswap.outcome", outcome);
      span.end();
    }
  }

  // ---- the swap side ---------------------------------------------------------------

  /** A residency event from the core. */
  event(event: ResidencyEventRecord): void {
    switch (event.kind) {
      case "loading": {
        const key = replicaKey(event.runnerId, event.model);
        this.endLoad(key, "superseded by another load");
        const fileBytes = this.options.fileBytes(event.path);
        const source = this.options.loadSource(event.path);
        const span = tracer().startSpan(
          SPAN.load,
          {
            attributes: {
              [ATTR.model]: event.model,
              [GEN_AI.requestModel]: event.model,
              [ATTR.runnerId]: event.runnerId,
              [ATTR.loadPath]: event.path,
              [ATTR.loadFileBytes]: fileBytes,
              [ATTR.loadSource]: source,
            },
          },
          this.waiterContext(event.forWaiter, event.model),
        );
        this.loads.set(key, { span, fileBytes, source });
        return;
      }
      case "loaded": {
        const key = replicaKey(event.runnerId, event.model);
        const load = this.loads.get(key);
        if (!load || !event.timings) return;
        this.loads.delete(key);
        const fileBytes = event.fileBytes || load.fileBytes;
        const { loadMs, modelLoadMs, contextMs, warmUpMs } = event.timings;
        load.span.setAttributes({
          [ATTR.loadFileBytes]: fileBytes,
          [ATTR.loadMeasuredBytes]: event.measuredBytes,
          [ATTR.rssBytes]: event.rssBytes,
          [ATTR.loadDurationMs]: loadMs,
          [ATTR.loadModelMs]: modelLoadMs,
          [ATTR.loadContextMs]: contextMs,
          [ATTR.loadWarmUpMs]: warmUpMs,
          [ATTR.loadBytesPerSecond]: loadMs > 0 ? Math.round(fileBytes / (loadMs / 1000)) : 0,
        });
        load.span.setStatus({ code: SpanStatusCode.OK });
        load.span.end();
        this.options.metrics?.loaded(event.model, "ok", loadMs / 1000, load.source);
        return;
      }
      case "load_failed":
        return this.endLoad(replicaKey(event.runnerId, event.model), event.reason, event.model, "failed");
      case "unloading": {
        const key = replicaKey(event.runnerId, event.model);
        this.endUnload(key, "superseded by another unload");
        const reason = describeUnloadReason(event.reason);
        const parent = this.waiterContext(event.forWaiter, event.reason.forModel);
        const evictSpan =
          event.reason.cause === "evicted"
            ? tracer().startSpan(
                SPAN.evict,
                {
                  attributes: {
                    [ATTR.evictedModel]: event.model,
                    [ATTR.evictReason]: reason,
                    [ATTR.evictBytesFreed]: event.bytes,
                    [ATTR.runnerId]: event.runnerId,
                    [ATTR.evictPolicy]: event.reason.policy ?? "",
                    [ATTR.evictForModel]: event.reason.forModel ?? "",
                  },
                },
                parent,
              )
            : undefined;
        const unloadSpan = tracer().startSpan(
          SPAN.unload,
          { attributes: { [ATTR.model]: event.model, [ATTR.runnerId]: event.runnerId, [ATTR.unloadReason]: reason } },
          evictSpan ? trace.setSpan(parent, evictSpan) : parent,
        );
        this.unloads.set(key, { unloadSpan, evictSpan });
        return;
      }
      case "unloaded": {
        const key = replicaKey(event.runnerId, event.model);
        const unload = this.unloads.get(key);
        this.unloads.delete(key);
        for (const span of [unload?.unloadSpan, unload?.evictSpan]) {
          if (!span) continue;
          span.setAttribute(ATTR.rssBytes, event.rssAfterBytes);
          span.setAttribute(ATTR.rssFreedBytes, Math.max(0, event.rssBeforeBytes - event.rssAfterBytes));
          span.setStatus({ code: SpanStatusCode.OK });
          span.end();
        }
        this.options.metrics?.swapped(event.model, event.reason.cause);
        return;
      }
      case "runner_exited": {
        const why = `runner exited: ${event.expected ? "stopped" : `crashed (exit code ${event.exitCode})`}`;
        for (const model of event.models) {
          this.endLoad(replicaKey(event.runnerId, model), why, model, "runner_exited");
          this.endUnload(replicaKey(event.runnerId, model), why);
        }
        return;
      }
    }
  }

  /** Ends every open span (placement is stopping). */
  close(): void {
    for (const id of [...this.waiters.keys()]) this.ended(id, "cancelled", new Error("placement stopped"));
    for (const key of [...this.loads.keys()]) this.endLoad(key, "placement stopped");
    for (const key of [...this.unloads.keys()]) this.endUnload(key, "placement stopped");
  }

  private endLoad(key: string, reason: string, model?: string, outcome?: "failed" | "runner_exited"): void {
    const load = this.loads.get(key);
    if (!load) return;
    this.loads.delete(key);
    load.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    load.span.end();
    if (outcome && model) this.options.metrics?.loaded(model, outcome, undefined, load.source);
  }

  private endUnload(key: string, reason: string): void {
    const unload = this.unloads.get(key);
    if (!unload) return;
    this.unloads.delete(key);
    for (const span of [unload.unloadSpan, unload.evictSpan]) {
      if (!span) continue;
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      span.end();
    }
  }

  /** The context of the waiter a swap serves; else of the oldest waiter for `model`; else a trace of its own. */
  private waiterContext(waiterId: string | undefined, model: string | undefined): Context {
    const named = waiterId === undefined ? undefined : this.waiters.get(waiterId);
    if (named) return named.context;
    for (const waiter of this.waiters.values()) if (model !== undefined && waiter.model === model) return waiter.context;
    return ROOT_CONTEXT;
  }
}

function replicaKey(runnerId: string, model: string): string {
  return `${runnerId}\u0000${model}`;
}

/** Decorates placement's effects with spans: what the core tells waiters and its residency events. */
export function withTracing(effects: PlacementEffects, tracing: PlacementTracing): PlacementEffects {
  return {
    ...effects,
    grant: (waiterId, lease) => {
      tracing.granted(waiterId, lease);
      effects.grant(waiterId, lease);
    },
    notifyQueued: (waiterId, model, position) => {
      tracing.queued(waiterId, position);
      effects.notifyQueued(waiterId, model, position);
    },
    notifyLoading: (waiterId, model, progress) => {
      tracing.loading(waiterId);
      effects.notifyLoading(waiterId, model, progress);
    },
    // A download of the model's file is part of making it ready: the wait in the queue is over.
    notifyDownloading: (waiterId, model, downloadedBytes, totalBytes) => {
      tracing.loading(waiterId);
      effects.notifyDownloading(waiterId, model, downloadedBytes, totalBytes);
    },
    reject: (waiterId, error) => {
      tracing.ended(waiterId, "rejected", error);
      effects.reject(waiterId, error);
    },
    publish: (event) => {
      tracing.event(event);
      effects.publish(event);
    },
  };
}
