/** The validated configuration: one YAML file shared by gateway, placement and runners. */
import type { ModelSource } from "./parse-model-source.js";

export type GpuMode = "auto" | "cpu" | "cuda" | "vulkan" | "metal";
export type Budget = { kind: "bytes"; bytes: number } | { kind: "fraction-of-available"; fraction: number };

export interface SamplingDefaults {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
}

export interface ModelConfig {
  name: string;
  /**
   * Absolute path (relative paths are resolved against the config file's folder). For a
   * model with a `source`, the file in models_dir that the download writes.
   */
  path: string;
  /** Set when the config's `path` named a download (hf:… or a URL) instead of a file. */
  source?: ModelSource;
  aliases: string[];
  tasks: string[];
  contextSize: number;
  threads: number;
  /** Parallel sequences per runner: streams one replica serves at once. */
  sequences: number;
  gpu: GpuMode;
  pin: boolean;
  preload: boolean;
  /** Unload after this long without requests; undefined = never. */
  ttlMs: number | undefined;
  /** Higher values are kept resident longer by the eviction policy. */
  priority: number;
  /** Serve from mmap + swap even when larger than the whole budget. */
  allowOvercommit: boolean;
  replicas: { min: number; max: number };
  sampling: SamplingDefaults;
  /** Size of the random-weight stand-in that `serve --forge-missing` writes when the file is absent. */
  forgeSizeBytes: number | undefined;
}

export interface PlacementConfig {
  listen: string;
  evictionPolicy: "lru" | "cost";
  spareRunners: number;
  queueMax: number;
  queueTimeoutMs: number;
  minResidencyMs: number;
  /** A queued request for a cold model waits at most this long before resident models with queued work may be evicted for it. */
  fairnessMs: number;
  stateFile: string | undefined;
  /** Read the next model's file into page cache while the current one serves. */
  prefetch: boolean;
}

export interface TelemetryConfig {
  /**
   * Port of the Prometheus /metrics endpoint per process; 0 disables. Placement serves
   * on metrics_port, the gateway (`serve`, `gateway`) on metrics_port + 1; runners have
   * none (placement exports their RSS).
   */
  metricsPort: number;
  /** Interface the /metrics endpoints bind (telemetry.metrics_host, default 127.0.0.1; 0.0.0.0 in containers). */
  metricsHost: string;
}

export interface Config {
  /** Folder of the config file; relative paths were resolved against it. */
  baseDir: string;
  /** Where `modelswap pull` and downloads of models with a source put files (models_dir, default ./models). */
  modelsDir: string;
  listen: string;
  budget: Budget;
  placement: PlacementConfig;
  models: ModelConfig[];
  /** task -> ordered fallback chain of model names. */
  routes: Record<string, string[]>;
  preferResident: boolean;
  telemetry: TelemetryConfig;
  maxPromptBytes: number;
}
