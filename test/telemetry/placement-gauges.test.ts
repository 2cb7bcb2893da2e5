// Placement's gauges as a Prometheus scrape would read them, from a core status, including the
// GPU budget's two gauges: present on a discrete GPU with gpu_budget, absent (not 0) otherwise.
import assert from "node:assert/strict";
import { AggregationTemporality, MeterProvider, MetricReader, type GaugeMetricData } from "@opentelemetry/sdk-metrics";
import { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { registerPlacementGauges } from "../../common/telemetry/placement-metrics.js";

const MiB = 1024 * 1024;

/** A reader collected on demand, as the Prometheus exporter does at each scrape. */
class ScrapeReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** gauge name -> [labels, value] of each point. */
async function scrape(status: StatusResponse): Promise<Map<string, Array<[Record<string, unknown>, number]>>> {
  const reader = new ScrapeReader();
  const provider = new MeterProvider({ readers: [reader] });
  registerPlacementGauges(() => status, provider.getMeter("modelswap"));
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  const gauges = new Map<string, Array<[Record<string, unknown>, number]>>();
  for (const metric of resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics) as GaugeMetricData[]) {
    gauges.set(
      metric.descriptor.name,
      metric.dataPoints.map((point) => [point.attributes, point.value]),
    );
  }
  return gauges;
}

function status(gpu: { budget: number; resident: number }): StatusResponse {
  return StatusResponse.fromPartial({
    budgetBytes: 1024 * MiB,
    residentBytes: 300 * MiB,
    gpuBudgetBytes: gpu.budget,
    gpuResidentBytes: gpu.resident,
    models: [
      { info: { name: "qwen-7b", queued: 2, replicas: 1 } },
      { info: { name: "stories", queued: 0, replicas: 0 } },
    ],
    runners: [{ id: "r1", model: "qwen-7b", state: "ready", rssBytes: 280 * MiB }],
  });
}

describe("placement gauges (what /metrics shows)", () => {
  it("on a discrete GPU with gpu_budget: the GPU budget and the GPU bytes resident models charge to it", async () => {
    const gauges = await scrape(status({ budget: 6144 * MiB, resident: 4200 * MiB }));
    assert.deepEqual(gauges.get("modelswap_gpu_budget_bytes"), [[{}, 6144 * MiB]]);
    assert.deepEqual(gauges.get("modelswap_gpu_resident_bytes"), [[{}, 4200 * MiB]]);
    assert.deepEqual(gauges.get("modelswap_budget_bytes"), [[{}, 1024 * MiB]]);
    assert.deepEqual(gauges.get("modelswap_resident_bytes"), [[{}, 300 * MiB]]);
  });

  it("without gpu_budget (CPU, or a Jetson's unified memory): no GPU series at all, rather than a misleading 0", async () => {
    const gauges = await scrape(status({ budget: 0, resident: 0 }));
    assert.deepEqual(gauges.get("modelswap_gpu_budget_bytes") ?? [], []);
    assert.deepEqual(gauges.get("modelswap_gpu_resident_bytes") ?? [], []);
    assert.deepEqual(gauges.get("modelswap_budget_bytes"), [[{}, 1024 * MiB]]);
  });

  it("per model: queue depth and whether a replica is resident; per runner: its RSS", async () => {
    const gauges = await scrape(status({ budget: 0, resident: 0 }));
    assert.deepEqual(gauges.get("modelswap_queue_depth"), [
      [{ model: "qwen-7b" }, 2],
      [{ model: "stories" }, 0],
    ]);
    assert.deepEqual(gauges.get("modelswap_model_resident"), [
      [{ model: "qwen-7b" }, 1],
      [{ model: "stories" }, 0],
    ]);
    assert.deepEqual(gauges.get("modelswap_runner_rss_bytes"), [[{ runner: "r1", model: "qwen-7b", state: "ready" }, 280 * MiB]]);
  });
});
