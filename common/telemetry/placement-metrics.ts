import { metrics, type Counter, type Histogram, type Meter } from "@opentelemetry/api";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import type { UnloadCause } from "../../services/placement/placement-types.js";

/** Placement's Prometheus counters and load histogram, fed by PlacementTracing from the core's residency events. */
export class PlacementMetrics {
  private readonly swaps: Counter;
  private readonly loads: Counter;
  private readonly loadSeconds: Histogram;
  private readonly leases: Counter;

  constructor() {
    const meter = metrics.getMeter("modelswap");
    this.swaps = meter.createCounter("modelswap_swaps", {
      description: "Models taken out of memory, by model and reason (evicted, idle_ttl, admin_unload, extra_replica, over_budget, runner_recycled)",
    });
    this.loads = meter.createCounter("modelswap_model_loads", { description: "Model loads by model and outcome (ok, failed, runner_exited)" });
    this.loadSeconds = meter.createHistogram("modelswap_model_load_seconds", {
      description: "Model load time (weights, context, warm-up), by model and source (page_cache, unknown)",
      unit: "s",
      advice: { explicitBucketBoundaries: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300] },
    });
    this.leases = meter.createCounter("modelswap_leases", { description: "Leases ended, by model and outcome (ok, cancelled, runner_failed)" });
  }

  leaseEnded(model: string, outcome: string): void {
    this.leases.add(1, { model, outcome });
  }

  swapped(model: string, cause: UnloadCause): void {
    this.swaps.add(1, { model, reason: cause });
  }

  loaded(model: string, outcome: "ok" | "failed" | "runner_exited", seconds: number | undefined, source: string): void {
    this.loads.add(1, { model, outcome });
    if (outcome === "ok" && seconds !== undefined) this.loadSeconds.record(seconds, { model, source });
  }
}

/** Placement's gauges, read from the core's status at scrape time (so they are never stale). */
export function registerPlacementGauges(status: () => StatusResponse, meter: Meter = metrics.getMeter("modelswap")): void {
  const resident = meter.createObservableGauge("modelswap_resident_bytes", { description: "Bytes charged to the budget by resident models", unit: "By" });
  const budget = meter.createObservableGauge("modelswap_budget_bytes", { description: "The memory budget", unit: "By" });
  // Observed only when gpu_budget is set (a discrete GPU): absent series, not a misleading 0.
  const gpuResident = meter.createObservableGauge("modelswap_gpu_resident_bytes", { description: "GPU bytes charged to gpu_budget by resident models", unit: "By" });
  const gpuBudget = meter.createObservableGauge("modelswap_gpu_budget_bytes", { description: "The GPU memory budget (gpu_budget)", unit: "By" });
  const queueDepth = meter.createObservableGauge("modelswap_queue_depth", { description: "Requests waiting for a model, by model" });
  const residentModel = meter.createObservableGauge("modelswap_model_resident", { description: "1 when the model has a ready replica, else 0" });
  const runnerRss = meter.createObservableGauge("modelswap_runner_rss_bytes", { description: "Resident set size of each runner process", unit: "By" });
  meter.addBatchObservableCallback(
    (observer) => {
      const now = status();
      observer.observe(resident, now.residentBytes);
      observer.observe(budget, now.budgetBytes);
      if (now.gpuBudgetBytes > 0) {
        observer.observe(gpuResident, now.gpuResidentBytes);
        observer.observe(gpuBudget, now.gpuBudgetBytes);
      }
      for (const model of now.models) {
        const info = model.info;
        if (!info) continue;
        observer.observe(queueDepth, info.queued, { model: info.name });
        observer.observe(residentModel, info.replicas > 0 ? 1 : 0, { model: info.name });
      }
      for (const runner of now.runners) observer.observe(runnerRss, runner.rssBytes, { runner: runner.id, model: runner.model, state: runner.state });
    },
    [resident, budget, gpuResident, gpuBudget, queueDepth, residentModel, runnerRss],
  );
}
