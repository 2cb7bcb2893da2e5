import path from "node:path";
import { parseSize } from "../parse-size.js";
import { ConfigError } from "./config-error.js";
import type { ApiKeyConfig, AuthConfig, Budget, ClusterConfig, Config, GpuLayers, GpuMode, Isolation, ModelConfig, PlacementConfig, SamplingDefaults, Scope, TlsConfig, UnifiedMemorySetting } from "./config-types.js";
import { isLoopbackAddress } from "./loopback.js";
import { parseDurationMs } from "./parse-duration.js";
import { isModelSource, parseModelSource } from "./parse-model-source.js";
import { SAMPLING_DEFAULTS, SAMPLING_RANGES } from "./sampling-defaults.js";

type RawObject = Record<string, unknown>;

const GPU_MODES: readonly GpuMode[] = ["auto", "cpu", "cuda", "vulkan", "metal"];
const ISOLATIONS: readonly Isolation[] = ["shared", "process"];
const POLICIES = ["lru", "cost"] as const;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const SCOPES: readonly Scope[] = ["infer", "admin", "metrics"];
/** API keys: 16 to 256 visible ASCII characters (they travel in an HTTP header). */
const KEY_PATTERN = /^[\x21-\x7e]{16,256}$/;

/** Environment variables a config may name (auth.keys[].key_env). */
export type ConfigEnv = Readonly<Record<string, string | undefined>>;

/**
 * Validates a parsed YAML document. Pure: no I/O. `baseDir` resolves relative model
 * and TLS paths; `env` supplies keys named by `key_env`. Throws ConfigError naming the
 * first wrong field's path.
 */
export function parseConfig(document: unknown, baseDir: string, env: ConfigEnv = {}): Config {
  const root = object(document, "config");
  knownKeys(root, "", [
    "listen", "budget", "gpu_budget", "unified_memory", "placement", "defaults", "models", "routes", "prefer_resident", "telemetry",
    "max_prompt_bytes", "http", "auth", "tls", "allow_unauthenticated_public", "models_dir", "cluster",
  ]);
  const modelsDir = path.resolve(baseDir, string(root.models_dir ?? "./models", "models_dir"));
  const defaults = root.defaults === undefined ? {} : object(root.defaults, "defaults");
  knownKeys(defaults, "defaults.", ["context", "threads", "sequences", "gpu", "gpu_layers", "ttl", "sampling", "isolation"]);

  const modelsRaw = root.models;
  if (!Array.isArray(modelsRaw) || modelsRaw.length === 0) throw new ConfigError("models must be a non-empty list of models");
  const models = modelsRaw.map((raw, index) => parseModel(raw, `models[${index}]`, defaults, baseDir, modelsDir));
  checkUniqueNames(models);

  const config: Config = {
    baseDir,
    modelsDir,
    listen: address(root.listen ?? "127.0.0.1:50051", "listen"),
    budget: parseBudget(root.budget ?? "80%", "budget"),
    gpuBudget: root.gpu_budget === undefined ? undefined : parseBudget(root.gpu_budget, "gpu_budget"),
    unifiedMemory: parseUnifiedMemory(root.unified_memory ?? "auto", "unified_memory"),
    placement: parsePlacement(root.placement, baseDir),
    models,
    routes: parseRoutes(root.routes, models),
    preferResident: bool(root.prefer_resident ?? true, "prefer_resident"),
    telemetry: parseTelemetry(root.telemetry),
    maxPromptBytes: positiveInt(root.max_prompt_bytes ?? 65536, "max_prompt_bytes"),
    http: parseHttp(root.http),
    auth: root.auth === undefined ? undefined : parseAuth(root.auth, env),
    tls: root.tls === undefined ? undefined : parseTls(root.tls, baseDir),
    allowUnauthenticatedPublic: bool(root.allow_unauthenticated_public ?? false, "allow_unauthenticated_public"),
    cluster: root.cluster === undefined ? undefined : parseCluster(root.cluster, env),
  };
  checkExposure(config);
  checkAdvertise(config);
  if (config.telemetry.metricsAuth && !config.auth) {
    throw new ConfigError("telemetry.metrics_auth asks scrapers for an API key, but auth.keys lists none: add a key with scopes [metrics] (or admin) for Prometheus");
  }
  return config;
}

function parseHttp(raw: unknown): Config["http"] {
  if (raw === undefined) return undefined;
  const http = object(raw, "http");
  knownKeys(http, "http.", ["listen"]);
  const listen = address(http.listen, "http.listen");
  if (listen.startsWith("unix:")) throw new ConfigError(`http.listen must be host:port like 127.0.0.1:8080 (got "${listen}")`);
  return { listen };
}

function parseAuth(raw: unknown, env: ConfigEnv): AuthConfig {
  const auth = object(raw, "auth");
  knownKeys(auth, "auth.", ["keys"]);
  if (!Array.isArray(auth.keys) || auth.keys.length === 0) throw new ConfigError("auth.keys must be a non-empty list of {name, key or key_env, scopes}");
  const keys = auth.keys.map((item, index): ApiKeyConfig => {
    const at = `auth.keys[${index}]`;
    const entry = object(item, at);
    knownKeys(entry, `${at}.`, ["name", "key", "key_env", "scopes"]);
    const name = string(entry.name, `${at}.name`);
    if (!NAME_PATTERN.test(name)) throw new ConfigError(`${at}.name must be 1-64 letters, digits, '.', '_', ':' or '-'`);
    if ((entry.key === undefined) === (entry.key_env === undefined)) throw new ConfigError(`${at} must set exactly one of key or key_env`);
    let key: string;
    if (entry.key_env !== undefined) {
      const variable = string(entry.key_env, `${at}.key_env`);
      const value = env[variable];
      if (value === undefined || value === "") throw new ConfigError(`${at}.key_env names ${variable}, which is not set; export it (e.g. ${variable}=$(openssl rand -hex 32))`);
      key = value;
    } else key = string(entry.key, `${at}.key`);
    // The message never shows the key.
    if (!KEY_PATTERN.test(key)) throw new ConfigError(`${at}: the key must be 16 to 256 visible ASCII characters without spaces (e.g. from openssl rand -hex 32)`);
    const scopes = stringList(entry.scopes, `${at}.scopes`);
    if (scopes.length === 0) throw new ConfigError(`${at}.scopes must list one or more of infer, admin, metrics`);
    for (const scope of scopes) {
      if (!(SCOPES as readonly string[]).includes(scope)) throw new ConfigError(`${at}.scopes has "${scope}"; use infer, admin, metrics (one or more)`);
    }
    return { name, key, scopes: [...new Set(scopes)] as Scope[] };
  });
  const names = new Set<string>();
  const secrets = new Set<string>();
  keys.forEach((key, index) => {
    if (names.has(key.name)) throw new ConfigError(`auth.keys[${index}].name "${key.name}" is used twice; give each key its own name`);
    if (secrets.has(key.key)) throw new ConfigError(`auth.keys[${index}] has the same key as an earlier entry; give each holder its own key`);
    names.add(key.name);
    secrets.add(key.key);
  });
  return { keys };
}

/** Other boxes dial this placement: a wildcard listen address needs an explicit one to give them. */
function checkAdvertise(config: Config): void {
  if (!config.cluster || config.cluster.advertise !== undefined) return;
  const listen = config.placement.listen;
  if (listen.startsWith("unix:") || /^(0\.0\.0\.0|\[::\]):/.test(listen)) {
    throw new ConfigError(`placement.listen is ${listen}, which other boxes cannot dial: set cluster.advertise to this box's host:port, e.g. 10.0.0.7:50052`);
  }
}

/** `cluster`: `box` and `advertise` may name environment variables as ${NAME} (Kubernetes: the node name, the pod IP). */
function parseCluster(raw: unknown, env: ConfigEnv): ClusterConfig {
  const cluster = object(raw, "cluster");
  knownKeys(cluster, "cluster.", ["etcd", "box", "advertise", "lease_ttl", "prefix"]);
  const etcdRaw = typeof cluster.etcd === "string" ? [cluster.etcd] : cluster.etcd;
  const etcd = stringList(etcdRaw, "cluster.etcd");
  if (etcd.length === 0) throw new ConfigError("cluster.etcd must list at least one etcd endpoint like http://127.0.0.1:2379");
  etcd.forEach((endpoint, index) => {
    if (!/^https?:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(endpoint)) {
      throw new ConfigError(`cluster.etcd[${index}] must be an endpoint like http://127.0.0.1:2379 (got "${endpoint}")`);
    }
  });
  const box = expandEnv(string(cluster.box, "cluster.box"), "cluster.box", env);
  if (!NAME_PATTERN.test(box)) throw new ConfigError(`cluster.box must be 1-64 letters, digits, '.', '_', ':' or '-' (got "${box}")`);
  const advertiseRaw = cluster.advertise === undefined ? undefined : expandEnv(string(cluster.advertise, "cluster.advertise"), "cluster.advertise", env);
  const advertise = advertiseRaw === undefined ? undefined : address(advertiseRaw, "cluster.advertise");
  if (advertise?.startsWith("unix:")) throw new ConfigError(`cluster.advertise must be host:port that other boxes reach (got "${advertise}")`);
  if (advertise && /^(0\.0\.0\.0|\[::\]):/.test(advertise)) {
    throw new ConfigError(`cluster.advertise is ${advertise}, which no other box can dial; give this box's own address, e.g. 10.0.0.7:50052`);
  }
  const leaseTtlMs = duration(cluster.lease_ttl ?? "5s", "cluster.lease_ttl");
  if (leaseTtlMs < 1000 || leaseTtlMs > 3_600_000 || leaseTtlMs % 1000 !== 0) {
    throw new ConfigError(`cluster.lease_ttl must be whole seconds from 1s to 1h, like 5s (etcd leases count seconds; got ${JSON.stringify(cluster.lease_ttl)})`);
  }
  const prefix = string(cluster.prefix ?? "modelswap/", "cluster.prefix");
  if (!/^[A-Za-z0-9._\/-]{1,64}$/.test(prefix) || !prefix.endsWith("/")) {
    throw new ConfigError(`cluster.prefix must be 1-64 letters, digits, '.', '_', '-' or '/' ending in '/', like modelswap/ (got "${prefix}")`);
  }
  return { etcd, box, advertise, leaseTtlMs, prefix };
}

/** Replaces ${NAME} with the environment variable NAME; an unset one is a mistake the message names. */
function expandEnv(text: string, at: string, env: ConfigEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, name: string) => {
    const value = env[name];
    if (value === undefined || value === "") throw new ConfigError(`${at} uses \${${name}}, which is not set; export ${name} or write the value itself`);
    return value;
  });
}

function parseTls(raw: unknown, baseDir: string): TlsConfig {
  const tls = object(raw, "tls");
  knownKeys(tls, "tls.", ["cert", "key"]);
  return { certPath: path.resolve(baseDir, string(tls.cert, "tls.cert")), keyPath: path.resolve(baseDir, string(tls.key, "tls.key")) };
}

/** Without keys, the public listeners stay on loopback unless the config says otherwise on purpose. */
function checkExposure(config: Config): void {
  if (config.auth || config.allowUnauthenticatedPublic) return;
  const listeners: [string, string | undefined][] = [["listen", config.listen], ["http.listen", config.http?.listen]];
  for (const [field, listen] of listeners) {
    if (listen === undefined || isLoopbackAddress(listen)) continue;
    throw new ConfigError(
      `${field} is ${listen}, reachable from other hosts, and no auth is configured: add auth.keys (README "Security model"), ` +
        "listen on 127.0.0.1, or set allow_unauthenticated_public: true to serve anyone who can reach it",
    );
  }
}

function parseModel(raw: unknown, at: string, defaults: RawObject, baseDir: string, modelsDir: string): ModelConfig {
  const model = object(raw, at);
  knownKeys(model, `${at}.`, [
    "name", "path", "aliases", "tasks", "context", "threads", "sequences", "gpu", "gpu_layers", "pin", "preload", "ttl",
    "priority", "allow_overcommit", "replicas", "sampling", "forge_size", "isolation", "sha256",
  ]);
  const name = string(model.name, `${at}.name`);
  if (!NAME_PATTERN.test(name)) throw new ConfigError(`${at}.name must be 1-64 letters, digits, '.', '_', ':' or '-' (got "${name}")`);
  const file = string(model.path, `${at}.path`);
  // `path: hf:…` or a URL: the model is downloaded into models_dir (modelswap pull, or on first use).
  const parsedSource = isModelSource(file) ? parseModelSource(file) : undefined;
  if (parsedSource && !parsedSource.ok) throw new ConfigError(`${at}.path ${parsedSource.reason}`);
  const source = parsedSource?.ok ? parsedSource.source : undefined;
  const sha256 = model.sha256 === undefined ? undefined : string(model.sha256, `${at}.sha256`).toLowerCase();
  if (sha256 !== undefined && !source) throw new ConfigError(`${at}.sha256 checks a download: path must then be a source (hf:… or an https:// URL)`);
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw new ConfigError(`${at}.sha256 must be 64 hex digits (got "${sha256}")`);
  const replicasRaw = model.replicas === undefined ? {} : object(model.replicas, `${at}.replicas`);
  knownKeys(replicasRaw, `${at}.replicas.`, ["min", "max"]);
  const min = nonNegativeInt(replicasRaw.min ?? 1, `${at}.replicas.min`);
  const max = positiveInt(replicasRaw.max ?? Math.max(1, min), `${at}.replicas.max`);
  if (max < min) throw new ConfigError(`${at}.replicas.max must be >= replicas.min (${max} < ${min})`);
  const ttl = model.ttl ?? defaults.ttl;
  const gpu = string(model.gpu ?? defaults.gpu ?? "auto", `${at}.gpu`) as GpuMode;
  if (!GPU_MODES.includes(gpu)) throw new ConfigError(`${at}.gpu must be one of ${GPU_MODES.join(", ")} (got "${gpu}")`);
  const isolation = string(model.isolation ?? defaults.isolation ?? "shared", `${at}.isolation`) as Isolation;
  if (!ISOLATIONS.includes(isolation)) throw new ConfigError(`${at}.isolation must be one of ${ISOLATIONS.join(", ")} (got "${isolation}")`);
  const gpuLayers = parseGpuLayers(model.gpu_layers ?? defaults.gpu_layers ?? "auto", `${at}.gpu_layers`);
  // A model on the CPU takes no layers from defaults.gpu_layers; setting them on it is a mistake.
  if (gpu === "cpu" && gpuLayers !== 0 && model.gpu_layers !== undefined) {
    throw new ConfigError(`${at}.gpu_layers offloads layers to a GPU but ${at}.gpu is cpu: remove gpu_layers or set gpu to auto or cuda`);
  }
  return {
    name,
    path: source ? path.join(modelsDir, source.fileName) : path.resolve(baseDir, file),
    ...(source ? { source } : {}),
    ...(sha256 ? { sha256 } : {}),
    aliases: stringList(model.aliases ?? [], `${at}.aliases`),
    tasks: stringList(model.tasks ?? [], `${at}.tasks`),
    contextSize: positiveInt(model.context ?? defaults.context ?? 2048, `${at}.context`),
    threads: positiveInt(model.threads ?? defaults.threads ?? 1, `${at}.threads`),
    sequences: positiveInt(model.sequences ?? defaults.sequences ?? 4, `${at}.sequences`),
    gpu,
    gpuLayers: gpu === "cpu" ? 0 : gpuLayers,
    pin: bool(model.pin ?? false, `${at}.pin`),
    preload: bool(model.preload ?? false, `${at}.preload`),
    ttlMs: ttl === undefined || ttl === null ? undefined : duration(ttl, `${at}.ttl`),
    priority: finiteNumber(model.priority ?? 0, `${at}.priority`),
    allowOvercommit: bool(model.allow_overcommit ?? false, `${at}.allow_overcommit`),
    replicas: { min, max },
    sampling: parseSampling(model.sampling ?? defaults.sampling, `${at}.sampling`),
    forgeSizeBytes: model.forge_size === undefined ? undefined : size(model.forge_size, `${at}.forge_size`),
    isolation,
  };
}

function parseSampling(raw: unknown, at: string): SamplingDefaults {
  const sampling = raw === undefined ? {} : object(raw, at);
  knownKeys(sampling, `${at}.`, ["temperature", "top_k", "top_p", "min_p", "repeat_penalty"]);
  return {
    temperature: inRange(sampling.temperature ?? SAMPLING_DEFAULTS.temperature, `${at}.temperature`, SAMPLING_RANGES.temperature.min, SAMPLING_RANGES.temperature.max),
    topK: nonNegativeInt(sampling.top_k ?? SAMPLING_DEFAULTS.topK, `${at}.top_k`),
    topP: inRange(sampling.top_p ?? SAMPLING_DEFAULTS.topP, `${at}.top_p`, SAMPLING_RANGES.topP.min, SAMPLING_RANGES.topP.max),
    minP: inRange(sampling.min_p ?? SAMPLING_DEFAULTS.minP, `${at}.min_p`, SAMPLING_RANGES.minP.min, SAMPLING_RANGES.minP.max),
    repeatPenalty: inRange(sampling.repeat_penalty ?? SAMPLING_DEFAULTS.repeatPenalty, `${at}.repeat_penalty`, SAMPLING_RANGES.repeatPenalty.min, SAMPLING_RANGES.repeatPenalty.max),
  };
}

function parsePlacement(raw: unknown, baseDir: string): PlacementConfig {
  const placement = raw === undefined ? {} : object(raw, "placement");
  knownKeys(placement, "placement.", [
    "listen", "eviction", "spare_runners", "queue_max", "queue_timeout", "min_residency", "fairness", "state_file", "prefetch",
    "max_downloads",
  ]);
  const policy = string(placement.eviction ?? "cost", "placement.eviction");
  if (!(POLICIES as readonly string[]).includes(policy)) {
    throw new ConfigError(`placement.eviction must be one of ${POLICIES.join(", ")} (got "${policy}")`);
  }
  const stateFile = placement.state_file === undefined ? undefined : string(placement.state_file, "placement.state_file");
  return {
    listen: address(placement.listen ?? "127.0.0.1:50052", "placement.listen"),
    evictionPolicy: policy as PlacementConfig["evictionPolicy"],
    spareRunners: nonNegativeInt(placement.spare_runners ?? 0, "placement.spare_runners"),
    queueMax: positiveInt(placement.queue_max ?? 64, "placement.queue_max"),
    queueTimeoutMs: duration(placement.queue_timeout ?? "120s", "placement.queue_timeout"),
    minResidencyMs: duration(placement.min_residency ?? "0s", "placement.min_residency"),
    fairnessMs: duration(placement.fairness ?? "10s", "placement.fairness"),
    stateFile: stateFile === undefined ? undefined : path.resolve(baseDir, stateFile),
    prefetch: bool(placement.prefetch ?? true, "placement.prefetch"),
    maxDownloads: intInRange(placement.max_downloads ?? 2, "placement.max_downloads", 1, 16),
  };
}

function parseRoutes(raw: unknown, models: ModelConfig[]): Record<string, string[]> {
  // No prototype: tasks come from users ("constructor" or "__proto__" must find nothing).
  const routes: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  // Tasks declared on models form default chains in catalog order.
  for (const model of models) for (const task of model.tasks) (routes[task] ??= []).push(model.name);
  if (raw === undefined) return routes;
  const table = object(raw, "routes");
  const known = new Set(models.map((model) => model.name));
  for (const [task, chainRaw] of Object.entries(table)) {
    const chain = stringList(chainRaw, `routes.${task}`);
    if (chain.length === 0) throw new ConfigError(`routes.${task} must list at least one model`);
    chain.forEach((name, index) => {
      if (!known.has(name)) throw new ConfigError(`routes.${task}[${index}] names unknown model "${name}" (known: ${[...known].join(", ")})`);
    });
    routes[task] = chain;
  }
  return routes;
}

function parseTelemetry(raw: unknown) {
  const telemetry = raw === undefined ? {} : object(raw, "telemetry");
  knownKeys(telemetry, "telemetry.", ["metrics_port", "metrics_host", "metrics_auth"]);
  const metricsPort = nonNegativeInt(telemetry.metrics_port ?? 0, "telemetry.metrics_port");
  if (metricsPort > 65534) throw new ConfigError(`telemetry.metrics_port must be at most 65534: the gateway uses metrics_port + 1 (got ${metricsPort})`);
  const metricsHost = string(telemetry.metrics_host ?? "127.0.0.1", "telemetry.metrics_host");
  if (!/^(\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]*:[0-9a-fA-F:]*|[A-Za-z0-9.-]+)$/.test(metricsHost)) {
    throw new ConfigError(`telemetry.metrics_host must be a host name or IP address like 127.0.0.1 or 0.0.0.0 (got "${metricsHost}")`);
  }
  const metricsAuth = bool(telemetry.metrics_auth ?? false, "telemetry.metrics_auth");
  return { metricsPort, metricsHost: metricsHost.replace(/^\[(.*)\]$/, "$1"), metricsAuth };
}

function size(raw: unknown, at: string): number {
  try {
    const bytes = parseSize(typeof raw === "number" ? String(raw) : string(raw, at));
    if (bytes > 0) return bytes;
  } catch {
    // reported below with the field path
  }
  throw new ConfigError(`${at} must be a size like 200MB or 1.5GiB (got ${JSON.stringify(raw)})`);
}

/** `budget` and `gpu_budget`: a size, or a percentage (of what, see Budget in config-types.ts). */
function parseBudget(raw: unknown, at: string): Budget {
  const of = at === "gpu_budget" ? "of free GPU memory" : "of available memory (of physical memory on a Jetson)";
  if (typeof raw === "string" && raw.trim().endsWith("%")) {
    const percent = Number(raw.trim().slice(0, -1));
    if (!Number.isFinite(percent) || percent <= 0 || percent > 100) {
      throw new ConfigError(`${at} must be a size like 5GiB or a percentage ${of} like 80% (got "${raw}")`);
    }
    return { kind: "fraction", fraction: percent / 100 };
  }
  try {
    return { kind: "bytes", bytes: size(raw, at) };
  } catch {
    throw new ConfigError(`${at} must be a size like 5GiB or a percentage ${of} like 80% (got ${JSON.stringify(raw)})`);
  }
}

function parseGpuLayers(raw: unknown, at: string): GpuLayers {
  if (raw === "auto") return "auto";
  if (typeof raw === "number" && Number.isInteger(raw) && raw >= 0 && raw <= 100_000) return raw;
  throw new ConfigError(`${at} must be auto (as many layers as fit on the GPU) or a number of layers, 0 for CPU only (got ${JSON.stringify(raw)})`);
}

function parseUnifiedMemory(raw: unknown, at: string): UnifiedMemorySetting {
  if (raw === "auto" || raw === true || raw === false) return raw;
  throw new ConfigError(`${at} must be auto (detect a Jetson), true (CPU and GPU share memory) or false (got ${JSON.stringify(raw)})`);
}

function checkUniqueNames(models: ModelConfig[]): void {
  const owner = new Map<string, string>();
  models.forEach((model, index) => {
    for (const name of [model.name, ...model.aliases]) {
      const previous = owner.get(name);
      if (previous !== undefined) throw new ConfigError(`models[${index}] uses the name "${name}" already taken by ${previous}`);
      owner.set(name, `models[${index}] (${model.name})`);
    }
  });
}

// Field readers: each names the field path in its error.
function object(value: unknown, at: string): RawObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ConfigError(`${at} must be a mapping`);
  return value as RawObject;
}
function knownKeys(value: RawObject, prefix: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new ConfigError(`${prefix}${key} is not a known setting (known: ${allowed.join(", ")})`);
  }
}
function string(value: unknown, at: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new ConfigError(`${at} must be a non-empty string`);
  return value;
}
function stringList(value: unknown, at: string): string[] {
  if (!Array.isArray(value)) throw new ConfigError(`${at} must be a list of strings`);
  return value.map((item, index) => string(item, `${at}[${index}]`));
}
function bool(value: unknown, at: string): boolean {
  if (typeof value !== "boolean") throw new ConfigError(`${at} must be true or false`);
  return value;
}
function finiteNumber(value: unknown, at: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new ConfigError(`${at} must be a number`);
  return value;
}
function positiveInt(value: unknown, at: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) throw new ConfigError(`${at} must be a positive integer`);
  return value;
}
function nonNegativeInt(value: unknown, at: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new ConfigError(`${at} must be a non-negative integer`);
  return value;
}
function intInRange(value: unknown, at: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${at} must be a whole number from ${min} to ${max}`);
  }
  return value;
}
function inRange(value: unknown, at: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${at} must be a number from ${min} to ${max}`);
  }
  return value;
}
function duration(value: unknown, at: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined) throw new ConfigError(`${at} must be a duration like 30s, 10m or 1h`);
  return ms;
}
function address(value: unknown, at: string): string {
  const text = string(value, at);
  if (text.startsWith("unix:")) return text;
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!match || Number(match[2]) > 65535) throw new ConfigError(`${at} must be host:port like 127.0.0.1:50051 or unix:/path (got "${text}")`);
  return text;
}
