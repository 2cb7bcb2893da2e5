import { statSync } from "node:fs";
import { cpus } from "node:os";
import {
  getLlama,
  GgufInsights,
  LlamaLogLevel,
  readGgufFileInfo,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { Engine, FootprintEstimate, GenerateInput, GenerateOutcome, LoadedModel, LoadSpec, LoadTimings, TextSink } from "./engine.js";
import { StopMatcher } from "./stop-matcher.js";
import { readCpuFeatures, readWeightTensors } from "./weight-tensors.js";
import { shouldMapWeights, type CpuFeatures } from "./weights-mapping.js";

const REPEAT_PENALTY_WINDOW = 64;
/** Tokens before a piece that detokenizing it looks at (leading-space rules); a few suffice. */
const DETOKENIZE_CONTEXT = 4;
const SEQUENCE_RECLAIM_TIMEOUT_MS = 2_000;
const RECLAIM_PAUSE_LIMIT_MS = 50;
/** Waits for the context to take a sequence back: a 1 ms timer, not a busy loop that would take the decode thread's core. */
const pollSoon = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

/** The Engine on node-llama-cpp. The only module of the project that imports it. */
export class LlamaEngine implements Engine {
  private llama: Llama | undefined;
  private cpuFeatures: CpuFeatures | undefined;
  /** Whether to map each file's weights, by path, size and mtime: a reload (a swap back) reads no header for it. */
  private readonly mapDecisions = new Map<string, Promise<boolean>>();

  async init(gpu: string): Promise<void> {
    if (this.llama) return;
    this.llama = await getLlama({ gpu: gpu === "cpu" ? false : gpu === "auto" ? "auto" : (gpu as "cuda" | "vulkan" | "metal"), logLevel: LlamaLogLevel.error });
  }

  private get ready(): Llama {
    if (!this.llama) throw new Error("engine used before init()");
    return this.llama;
  }

  async estimate(path: string, contextSize: number, sequences: number, requestedGpuLayers: number): Promise<FootprintEstimate> {
    const info = await readGgufFileInfo(path, { logWarnings: false });
    const insights = await GgufInsights.from(info, this.ready);
    // "auto" (-1) is estimated as every layer on the GPU: the most it can take.
    const gpuLayers = this.ready.gpu === false ? 0 : requestedGpuLayers < 0 ? insights.totalLayers : Math.min(requestedGpuLayers, insights.totalLayers);
    const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers });
    const context = await insights.estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: gpuLayers, sequences });
    const gpuBytes = model.gpuVram + context.gpuVram;
    return { bytes: model.cpuRam + context.cpuRam + gpuBytes, gpuBytes };
  }

  /**
   * Map the weights when llama.cpp uses them in place on this CPU (see weights-mapping.ts):
   * no copy on load, and the pages are the page cache's. Read them when it would repack them
   * (a mapping would hold them twice) and on a GPU (weights are uploaded).
   */
  private mapsWeights(path: string): Promise<boolean> {
    if (this.ready.gpu !== false) return Promise.resolve(false);
    let key: string;
    try {
      const file = statSync(path);
      key = `${path}\0${file.size}\0${file.mtimeMs}`;
    } catch {
      return Promise.resolve(false); // the load itself reports the missing file
    }
    let decision = this.mapDecisions.get(key);
    if (!decision) {
      decision = (async () => {
        this.cpuFeatures ??= await readCpuFeatures();
        return shouldMapWeights(await readWeightTensors(path), { kind: "cpu", features: this.cpuFeatures });
      })();
      this.mapDecisions.set(key, decision);
      decision.catch(() => this.mapDecisions.delete(key));
    }
    return decision;
  }

  prepare(path: string): void {
    if (this.llama) this.mapsWeights(path).catch(() => undefined);
  }

  async load(spec: LoadSpec, onProgress: (progress: number) => void): Promise<LoadedModel> {
    const llama = this.ready;
    const deviceUsed = async () => (llama.gpu === false ? 0 : (await llama.getVramState()).used);
    const deviceBefore = await deviceUsed();
    const started = performance.now();
    const useMmap = spec.useMmap || (await this.mapsWeights(spec.path));
    const model = await llama.loadModel({
      modelPath: spec.path,
      gpuLayers: llama.gpu === false ? 0 : (spec.gpuLayers ?? "auto"),
      useMmap,
      onLoadProgress: onProgress,
    });
    const modelLoaded = performance.now();
    let context: LlamaContext;
    try {
      context = await model.createContext({
        contextSize: spec.contextSize,
        sequences: spec.sequences,
        threads: Math.min(spec.threads, cpus().length),
      });
    } catch (error) {
      await model.dispose();
      throw error;
    }
    const contextCreated = performance.now();
    const loaded = new LlamaLoadedModel(spec, model, context, {
      modelLoadMs: modelLoaded - started,
      contextMs: contextCreated - modelLoaded,
      warmUpMs: 0,
    });
    if (spec.warmUp) {
      try {
        await loaded.warmUp();
      } catch (error) {
        await loaded.dispose();
        throw error;
      }
    }
    loaded.deviceBytes = Math.max(0, (await deviceUsed()) - deviceBefore);
    loaded.mappedBytes = useMmap ? statSync(spec.path).size : 0;
    return loaded;
  }
}

class LlamaLoadedModel implements LoadedModel {
  deviceBytes = 0;
  mappedBytes = 0;
  get backend(): string {
    return this.model.gpuLayers > 0 && this.model.llama.gpu !== false ? this.model.llama.gpu : "cpu";
  }

  get gpuLayers(): number {
    return this.model.gpuLayers;
  }
  /** Streams holding a sequence. */
  private holding = 0;
  private readonly chatWrapper: ChatWrapper;

  constructor(
    readonly spec: LoadSpec,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly timings: LoadTimings,
  ) {
    this.chatWrapper = resolveChatWrapper(model);
  }

  /** Touches every weight once (page faults, first-use allocations) so the first request is fast. */
  async warmUp(): Promise<void> {
    const started = performance.now();
    const sequence = this.context.getSequence();
    try {
      const prompt = this.model.tokens.bos !== null ? [this.model.tokens.bos] : this.model.tokenize("a");
      const iterator = sequence.evaluate(prompt, { temperature: 0 })[Symbol.asyncIterator]();
      await iterator.next();
      await iterator.return?.();
    } finally {
      sequence.dispose();
    }
    this.timings.warmUpMs = performance.now() - started;
  }

  async generate(input: GenerateInput, signal: AbortSignal, sink: TextSink): Promise<GenerateOutcome> {
    const started = performance.now();
    const sequence = await this.nextSequence();
    this.holding++;
    try {
      const { tokens: promptTokens, stops } = this.renderPrompt(input);
      if (promptTokens.length >= this.spec.contextSize) {
        throw new RangeError(`prompt is ${promptTokens.length} tokens; the model's context holds ${this.spec.contextSize}`);
      }
      const maxTokens = Math.min(input.maxTokens, this.spec.contextSize - promptTokens.length);
      const stopMatcher = new StopMatcher([...input.sampling.stop, ...stops]);
      const recent: Token[] = promptTokens.slice(-REPEAT_PENALTY_WINDOW);
      const replacementForEog = input.sampling.ignoreEos ? this.model.tokenize("\n")[0] : undefined;
      const sampling = input.sampling;
      const iterator = sequence
        .evaluate(promptTokens, {
          temperature: sampling.temperature,
          topK: sampling.topK,
          topP: sampling.topP,
          minP: sampling.minP,
          seed: sampling.seed,
          repeatPenalty: sampling.repeatPenalty > 1 ? { punishTokens: () => recent, penalty: sampling.repeatPenalty } : undefined,
          yieldEogToken: replacementForEog !== undefined,
        })
        [Symbol.asyncIterator]();

      let completionTokens = 0;
      let firstTokenMs = 0;
      let finishReason: GenerateOutcome["finishReason"] = "stop";
      let pending: Token[] = [];
      let replacement: Token | undefined;
      try {
        while (true) {
          if (signal.aborted) {
            finishReason = "cancelled";
            break;
          }
          const step = await iterator.next(replacement as Token);
          replacement = undefined;
          if (step.done) break;
          let token = step.value;
          if (replacementForEog !== undefined && this.model.isEogToken(token)) {
            token = replacementForEog;
            replacement = token;
          }
          if (completionTokens === 0) firstTokenMs = performance.now() - started;
          completionTokens++;
          recent.push(token);
          if (recent.length > REPEAT_PENALTY_WINDOW) recent.shift();
          pending.push(token);
          const before = recent.length - pending.length;
          const text = this.model.detokenize(pending, false, recent.slice(Math.max(0, before - DETOKENIZE_CONTEXT), before));
          if (!text.endsWith("\uFFFD")) {
            pending = [];
            const { emit, stopped } = stopMatcher.push(text);
            if (emit.length > 0) await sink(emit, completionTokens);
            if (stopped) break;
          }
          if (completionTokens >= maxTokens) {
            finishReason = "length";
            break;
          }
          if (this.reclaimPending()) await this.pauseForReclaim();
        }
      } finally {
        await iterator.return?.();
      }
      const rest = stopMatcher.flush();
      if (rest.length > 0 && finishReason !== "cancelled") await sink(rest, completionTokens);
      return {
        finishReason,
        promptTokens: promptTokens.length,
        completionTokens,
        firstTokenMs,
        generateMs: performance.now() - started,
      };
    } finally {
      sequence.dispose();
      this.holding--;
    }
  }

  /**
   * node-llama-cpp returns a disposed sequence's slot under the context lock, which its
   * batch loop holds for as long as any sequence has a decode queued. While a slot is
   * waiting to come back, every stream pauses before its next decode so the loop drains
   * and lets the slot go (about 1 ms); otherwise busy neighbours would hold it until
   * they all end.
   */
  private reclaimPending(): boolean {
    return this.context.sequencesLeft + this.holding < this.spec.sequences;
  }

  /** Holds this stream (no decode queued) until the context has taken a disposed sequence back, at most briefly. */
  private async pauseForReclaim(): Promise<void> {
    const deadline = performance.now() + RECLAIM_PAUSE_LIMIT_MS;
    while (this.reclaimPending() && performance.now() < deadline) await pollSoon();
  }

  /**
   * A disposed sequence returns its slot to the context asynchronously, so a stream that
   * starts right after another was cancelled may have to wait a moment for it.
   */
  private async nextSequence(): Promise<LlamaContextSequence> {
    const deadline = performance.now() + SEQUENCE_RECLAIM_TIMEOUT_MS;
    while (this.context.sequencesLeft === 0) {
      if (performance.now() > deadline) throw new Error("no sequence was freed in time: the runner is serving its maximum number of streams");
      await pollSoon();
    }
    return this.context.getSequence();
  }

  private renderPrompt(input: GenerateInput): { tokens: Token[]; stops: string[] } {
    if (input.kind === "prompt") {
      const text = input.prompt + input.resumeText;
      const tokens = this.model.tokenize(text);
      const bos = this.model.tokens.bos;
      if (bos !== null && this.model.tokens.shouldPrependBosToken) tokens.unshift(bos);
      return { tokens, stops: [] };
    }
    const history: ChatHistoryItem[] = input.turns.map((turn): ChatHistoryItem => {
      if (turn.role === "system") return { type: "system", text: turn.content };
      if (turn.role === "assistant") return { type: "model", response: [turn.content] };
      return { type: "user", text: turn.content };
    });
    history.push({ type: "model", response: input.resumeText ? [input.resumeText] : [] });
    const state = this.chatWrapper.generateContextState({ chatHistory: history });
    const stops = state.stopGenerationTriggers
      .filter((trigger) => trigger.values.every((value) => typeof value === "string"))
      .map((trigger) => trigger.values.join(""))
      .filter((stop) => stop.length > 0);
    return { tokens: state.contextText.tokenize(this.model.tokenizer), stops };
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}
