import type { Metadata } from "@grpc/grpc-js";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import type { ResidencyEvent } from "../../gen/modelswap/v1/admin.js";
import type { Lease } from "../../gen/modelswap/v1/placement.js";
import type { RunnerCommand, RunnerEvent } from "../../gen/modelswap/v1/runner.js";
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
  model: string;
  span: Span;
  fileBytes: number;
  source: string;
  startedMs: number;
}

interface OpenUnload {
  model: string;
  startedMs: number;
  reason: string | undefined;
  unloadSpan: Span | undefined;
  evictSpan: Span | undefined;
  rssBefore: number | undefined;
  rssAfter: number | undefined;
}

/**
 * Placement's spans. Each Acquire gets `placement.acquire` (a child of the caller's
 * context) with `queue.wait` inside. Swaps are observed at the effects layer (commands
 * sent to runners, residency events, runner events) and parented under the acquire
 * span of the first waiter of the model that caused them, so a swap shows up inside the
 * trace of the request that needed it:
 *   placement.acquire > queue.wait | model.evict > model.unload | model.load
 * Swaps no request caused (preload, idle TTL, admin) are traces of their own.
 */
export class PlacementTracing {
  private readonly waiters = new Map<string, Waiter>();
  private readonly loads = new Map<string, OpenLoad>();
  private readonly unloads = new Map<string, OpenUnload>();
  private readonly lastRss = new Map<string, number>();

  constructor(private readonly options: PlacementTracingOptions) {}

  // ---- the request side ------------------------------------------------------------

  /** An Acquire call arrived (before the core sees it: a load it starts at once must find it). */
  acquireStarted(waiterId: string, metadata: Metadata | undefined, requestedModel: string, model: string): void {
    const parent = extractContext(metadata);
    const span = tracer().startSpan(
      SPAN.acquire,
      { kind: SpanKind.SERVER, attributes: { [GEN_AI.requestModel]: requestedModel, [ATTR.model]: model } },
      parent,
    );
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

  /** A command placement sends to a runner (the core's sendToRunner effect). */
  command(runnerId: string, command: RunnerCommand): void {
    const c = command.command;
    if (c?.$case === "load") {
      this.finishLoad(runnerId, "superseded by another load");
      const fileBytes = this.options.fileBytes(c.value.path);
      const source = this.options.loadSource(c.value.path);
      const span = tracer().startSpan(
        SPAN.load,
        {
          attributes: {
            [ATTR.model]: c.value.model,
            [GEN_AI.requestModel]: c.value.model,
            [ATTR.runnerId]: runnerId,
            [ATTR.loadPath]: c.value.path,
            [ATTR.loadFileBytes]: fileBytes,
            [ATTR.loadSource]: source,
          },
        },
        this.firstWaiterContext(c.value.model) ?? ROOT_CONTEXT,
      );
      this.loads.set(runnerId, { model: c.value.model, span, fileBytes, source, startedMs: performance.now() });
    } else if (c?.$case === "unload") {
      this.finishUnload(runnerId, "superseded by another unload");
      this.unloads.set(runnerId, {
        model: c.value.model,
        startedMs: performance.now(),
        reason: undefined,
        unloadSpan: undefined,
        evictSpan: undefined,
        rssBefore: this.lastRss.get(runnerId),
        rssAfter: undefined,
      });
    }
  }

  /** What the runner reports on its control stream (seen before the core handles it). */
  runnerEvent(runnerId: string, message: RunnerEvent): void {
    const e = message.event;
    if (!e) return;
    switch (e.$case) {
      case "ready":
        this.lastRss.set(runnerId, e.value.rssBytes);
        return;
      case "heartbeat":
        this.lastRss.set(runnerId, e.value.rssBytes);
        return;
      case "loaded": {
        this.lastRss.set(runnerId, e.value.rssBytes);
        const load = this.loads.get(runnerId);
        if (!load || load.model !== e.value.model) return;
        this.loads.delete(runnerId);
        const fileBytes = e.value.fileBytes || load.fileBytes;
        load.span.setAttributes({
          [ATTR.loadFileBytes]: fileBytes,
          [ATTR.loadMeasuredBytes]: e.value.measuredBytes,
          [ATTR.rssBytes]: e.value.rssBytes,
          [ATTR.loadDurationMs]: e.value.loadMs,
          [ATTR.loadModelMs]: e.value.modelLoadMs,
          [ATTR.loadContextMs]: e.value.contextMs,
          [ATTR.loadWarmUpMs]: e.value.warmUpMs,
          [ATTR.loadBytesPerSecond]: e.value.loadMs > 0 ? Math.round(fileBytes / (e.value.loadMs / 1000)) : 0,
        });
        load.span.setStatus({ code: SpanStatusCode.OK });
        load.span.end();
        this.options.metrics?.loaded(load.model, "ok", e.value.loadMs / 1000, load.source);
        return;
      }
      case "failed":
        if (this.loads.get(runnerId)?.model === e.value.model) this.finishLoad(runnerId, e.value.reason, "failed");
        return;
      case "unloaded": {
        this.lastRss.set(runnerId, e.value.rssBytes);
        const unload = this.unloads.get(runnerId);
        if (unload) unload.rssAfter = e.value.rssBytes;
        return;
      }
    }
  }

  /** Placement's residency events (the core's publish effect). */
  event(event: ResidencyEvent): void {
    switch (event.kind) {
      case "evicted":
        return this.evicted(event);
      case "unloaded":
        return this.unloaded(event);
      case "runner_exited":
        this.finishLoad(event.runnerId, `runner exited: ${event.reason}`, "runner_exited");
        this.finishUnload(event.runnerId, `runner exited: ${event.reason}`);
        this.lastRss.delete(event.runnerId);
        return;
    }
  }

  /** Ends every open span (placement is stopping). */
  close(): void {
    for (const id of [...this.waiters.keys()]) this.ended(id, "cancelled", new Error("placement stopped"));
    for (const id of [...this.loads.keys()]) this.finishLoad(id, "placement stopped");
    for (const id of [...this.unloads.keys()]) this.finishUnload(id, "placement stopped");
  }

  private evicted(event: ResidencyEvent): void {
    // The core names the model it evicts for: "evicted by <policy> for <model>".
    const match = /^evicted by (\S+) for (.+)$/.exec(event.reason);
    const forModel = match?.[2];
    const parent = (forModel ? this.firstWaiterContext(forModel) : undefined) ?? this.firstWaiterContext() ?? ROOT_CONTEXT;
    // The core sends the unload command just before it publishes "evicted": the eviction starts with it.
    const pending = this.unloads.get(event.runnerId);
    const startTime = pending && pending.model === event.model ? pending.startedMs : performance.now();
    const evictSpan = tracer().startSpan(
      SPAN.evict,
      {
        startTime,
        attributes: {
          [ATTR.evictedModel]: event.model,
          [ATTR.evictReason]: event.reason,
          [ATTR.evictBytesFreed]: event.bytes,
          [ATTR.runnerId]: event.runnerId,
          ...(match ? { [ATTR.evictPolicy]: match[1]!, [ATTR.evictForModel]: match[2]! } : {}),
        },
      },
      parent,
    );
    let unload = this.unloads.get(event.runnerId);
    if (!unload || unload.model !== event.model) {
      unload = { model: event.model, startedMs: performance.now(), reason: undefined, unloadSpan: undefined, evictSpan: undefined, rssBefore: this.lastRss.get(event.runnerId), rssAfter: undefined };
      this.unloads.set(event.runnerId, unload);
    }
    unload.reason = event.reason;
    unload.evictSpan = evictSpan;
    unload.unloadSpan = this.startUnloadSpan(unload, event.runnerId, trace.setSpan(parent, evictSpan));
  }

  private unloaded(event: ResidencyEvent): void {
    const unload = this.unloads.get(event.runnerId);
    if (!unload) return;
    this.unloads.delete(event.runnerId);
    unload.reason ??= event.reason;
    unload.unloadSpan ??= this.startUnloadSpan(unload, event.runnerId, ROOT_CONTEXT);
    const rssAfter = unload.rssAfter ?? event.bytes;
    const rssFreed = unload.rssBefore !== undefined ? Math.max(0, unload.rssBefore - rssAfter) : undefined;
    for (const span of [unload.unloadSpan, unload.evictSpan]) {
      if (!span) continue;
      span.setAttribute(ATTR.rssBytes, rssAfter);
      if (rssFreed !== undefined) span.setAttribute(ATTR.rssFreedBytes, rssFreed);
      span.setStatus({ code: SpanStatusCode.OK });
      span.end();
    }
    this.options.metrics?.swapped(unload.model, unload.reason ?? event.reason);
  }

  private startUnloadSpan(unload: OpenUnload, runnerId: string, parent: Context): Span {
    return tracer().startSpan(
      SPAN.unload,
      {
        startTime: unload.startedMs,
        attributes: { [ATTR.model]: unload.model, [ATTR.runnerId]: runnerId, [ATTR.unloadReason]: unload.reason ?? "" },
      },
      parent,
    );
  }

  private finishLoad(runnerId: string, reason: string, outcome?: "failed" | "runner_exited"): void {
    const load = this.loads.get(runnerId);
    if (!load) return;
    this.loads.delete(runnerId);
    load.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    load.span.end();
    if (outcome) this.options.metrics?.loaded(load.model, outcome, undefined, load.source);
  }

  private finishUnload(runnerId: string, reason: string): void {
    const unload = this.unloads.get(runnerId);
    if (!unload) return;
    this.unloads.delete(runnerId);
    for (const span of [unload.unloadSpan, unload.evictSpan]) {
      if (!span) continue;
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      span.end();
    }
  }

  /** The context of the oldest Acquire still waiting for `model` (any model when omitted). */
  private firstWaiterContext(model?: string): Context | undefined {
    for (const waiter of this.waiters.values()) if (model === undefined || waiter.model === model) return waiter.context;
    return undefined;
  }
}
