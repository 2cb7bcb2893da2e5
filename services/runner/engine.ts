/**
 * The runner's seam around the inference library: the rest of the runner (and the
 * tests of other services) see only these types. `llama-engine.ts` implements it
 * with node-llama-cpp.
 */

export interface LoadSpec {
  model: string;
  path: string;
  contextSize: number;
  /** Parallel sequences in one context: the number of streams served at once. */
  sequences: number;
  threads: number;
  gpu: string;
  /** Layers to offload to the GPU (config gpu_layers): "auto" (default) = as many as fit, 0 = CPU only. */
  gpuLayers?: "auto" | number;
  /** Evaluate one token during load so the first request pays no warm-up. */
  warmUp: boolean;
  /** Map the file (pages shared with page cache) instead of reading it into the process. */
  useMmap: boolean;
}

export interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  seed: number | undefined;
  stop: string[];
  ignoreEos: boolean;
}

export type GenerateInput =
  | { kind: "prompt"; prompt: string; resumeText: string; maxTokens: number; sampling: SamplingSettings }
  | { kind: "chat"; turns: { role: string; content: string }[]; resumeText: string; maxTokens: number; sampling: SamplingSettings };

export type FinishReason = "stop" | "length" | "cancelled";

export interface GenerateOutcome {
  finishReason: FinishReason;
  promptTokens: number;
  /** Of promptTokens, those the prompt cache kept from an earlier request (not evaluated again). */
  cachedPromptTokens: number;
  completionTokens: number;
  /** From the start of generate() to the first token. */
  firstTokenMs: number;
  generateMs: number;
}

/** Receives text pieces; a returned promise pauses this stream (backpressure) until it settles. */
export type TextSink = (text: string, completionTokens: number) => void | Promise<void>;

export interface LoadTimings {
  modelLoadMs: number;
  contextMs: number;
  warmUpMs: number;
}

export interface LoadedModel {
  readonly spec: LoadSpec;
  readonly timings: LoadTimings;
  /** GPU memory the load took (0 on CPU): process RSS does not show device allocations. */
  readonly deviceBytes: number;
  /** Layers llama.cpp offloaded to the GPU (0 on CPU). */
  readonly gpuLayers: number;
  /** The weights are mapped from the file (use_mmap) rather than read into memory. */
  readonly weightsMapped: boolean;
  /** Where it runs: "cpu", "cuda", "vulkan", "metal". */
  readonly backend: string;
  /**
   * Generates until max tokens, a stop condition or the signal aborts (within one token).
   * Placement admits at most `sequences` streams; one that arrives while a failed
   * stream's sequence is still being handed back waits for it briefly. Sequences keep
   * their KV between requests: a prompt that shares a prefix with what a free sequence
   * holds evaluates only the rest (the output is the same as without it).
   */
  generate(input: GenerateInput, signal: AbortSignal, sink: TextSink): Promise<GenerateOutcome>;
  dispose(): Promise<void>;
}

export interface FootprintEstimate {
  bytes: number;
  gpuBytes: number;
}

export interface Engine {
  /** Initialises the backend (done once per process, before any load). */
  init(gpu: string): Promise<void>;
  load(spec: LoadSpec, onProgress: (progress: number) => void): Promise<LoadedModel>;
  /**
   * Footprint (weights + context) estimated from the GGUF header, without loading: `bytes`
   * in all, of which `gpuBytes` on the GPU with `gpuLayers` offloaded (-1: all layers; 0
   * without a GPU backend).
   */
  estimate(path: string, contextSize: number, sequences: number, gpuLayers: number): Promise<FootprintEstimate>;
}
