/** The validated configuration: one YAML file shared by gateway, placement and runners. */
import type { ModelSource } from "./parse-model-source.js";

export type GpuMode = "auto" | "cpu" | "cuda" | "vulkan" | "metal";
/** `shared`: the model may join a runner process that hosts other models; `process`: a runner of its own. */
export type Isolation = "shared" | "process";
/**
 * A memory budget: a size, or a fraction of what the box gives models. For `budget`, the
 * fraction is of MemAvailable at start, and of PHYSICAL memory on a unified-memory box
 * (Jetson), where CPU and GPU share the DRAM (common/system/resolve-budget.ts). For
 * `gpu_budget`, it is of the GPU memory free at start (common/system/resolve-gpu-budget.ts).
 */
export type Budget = { kind: "bytes"; bytes: number } | { kind: "fraction"; fraction: number };
/** Whether CPU and GPU share one DRAM: `auto` detects a Jetson (common/system/memory-source.ts). */
export type UnifiedMemorySetting = "auto" | boolean;
/** Model layers offloaded to the GPU: `auto` = as many as fit, a number = that many (capped at the model's), 0 = CPU only. */
export type GpuLayers = "auto" | number;

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
  /** Hex SHA-256 (lower case) the downloaded file must have; only with a source. */
  sha256?: string;
  aliases: string[];
  tasks: string[];
  contextSize: number;
  threads: number;
  /** Parallel sequences per runner: streams one replica serves at once. */
  sequences: number;
  gpu: GpuMode;
  /** Layers node-llama-cpp offloads to the GPU (gpu_layers); 0 when gpu is cpu. */
  gpuLayers: GpuLayers;
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
  isolation: Isolation;
}

export interface PlacementConfig {
  listen: string;
  evictionPolicy: "lru" | "cost";
  /** Runner processes with no model kept started beyond the shared runner (a shared runner takes new models without a process start). */
  spareRunners: number;
  queueMax: number;
  queueTimeoutMs: number;
  minResidencyMs: number;
  /** A queued request for a cold model waits at most this long before resident models with queued work may be evicted for it. */
  fairnessMs: number;
  stateFile: string | undefined;
  /** Read the next model's file into page cache while the current one serves. */
  prefetch: boolean;
  /** First-use downloads running at once; more wait for one to finish. */
  maxDownloads: number;
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
  /** /metrics asks for an API key with the metrics or admin scope (telemetry.metrics_auth, default false). */
  metricsAuth: boolean;
}

/** What an API key may do: `infer` (Generate, Chat, ListModels, /v1/*), `admin` (the Admin service, and /metrics), `metrics` (/metrics only). */
export type Scope = "infer" | "admin" | "metrics";

export interface ApiKeyConfig {
  /** Who holds the key (in logs and errors; the key itself never is). */
  name: string;
  /** The secret, from `key` or the environment variable named by `key_env`. */
  key: string;
  scopes: Scope[];
}

export interface AuthConfig {
  keys: ApiKeyConfig[];
}

/** PEM files for the public listeners (gRPC gateway and HTTP API); absolute paths. */
export interface TlsConfig {
  certPath: string;
  keyPath: string;
}

/** The OpenAI-compatible HTTP API (absent: off). */
export interface HttpConfig {
  listen: string;
}

/**
 * More than one box (`cluster`): each placement registers its box in etcd under a lease;
 * every gateway watches the registry and routes a request to the box where its model lives.
 */
export interface ClusterConfig {
  /** etcd endpoints, e.g. ["http://10.0.0.5:2379"]. */
  etcd: string[];
  /** This box's name in the registry (unique in the cluster). */
  box: string;
  /** host:port of this box's placement as other boxes' gateways reach it; undefined = the address placement bound. */
  advertise: string | undefined;
  /** TTL of the box's etcd lease: a box that stops renewing it drops out this long after. Whole seconds. */
  leaseTtlMs: number;
  /** Key prefix of the registry in etcd (several clusters can share one etcd). */
  prefix: string;
}

export interface Config {
  /** Folder of the config file; relative paths were resolved against it. */
  baseDir: string;
  /** Where `modelswap pull` and downloads of models with a source put files (models_dir, default ./models). */
  modelsDir: string;
  listen: string;
  budget: Budget;
  /**
   * GPU memory budget on discrete GPUs (gpu_budget); undefined = not budgeted (llama.cpp
   * fits layers into what is free). Refused on unified memory, where `budget` covers both.
   */
  gpuBudget: Budget | undefined;
  /** Whether CPU and GPU share memory (unified_memory): auto-detected unless set. */
  unifiedMemory: UnifiedMemorySetting;
  placement: PlacementConfig;
  models: ModelConfig[];
  /** task -> ordered fallback chain of model names. */
  routes: Record<string, string[]>;
  preferResident: boolean;
  telemetry: TelemetryConfig;
  maxPromptBytes: number;
  http: HttpConfig | undefined;
  /** API keys; absent: no keys asked (only allowed on loopback unless allowUnauthenticatedPublic). */
  auth: AuthConfig | undefined;
  tls: TlsConfig | undefined;
  /** Serve without keys on a non-loopback address, on purpose (allow_unauthenticated_public). */
  allowUnauthenticatedPublic: boolean;
  /** Absent: one box, no registry. */
  cluster: ClusterConfig | undefined;
}
