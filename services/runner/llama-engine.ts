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
import { chooseSequence } from "./prompt-cache.js";
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
    loaded.weightsMapped = useMmap;
    return loaded;
  }
}

/** One of a model's sequences, kept between requests with the KV of what it last evaluated (the prompt cache). */
interface PooledSequence {
  sequence: LlamaContextSequence;
  lastUsed: number;
  /** Cleared when a context shift moved its KV: it no longer equals a cold evaluation of its tokens. */
  reusable: boolean;
}

class LlamaLoadedModel implements LoadedModel {
  deviceBytes = 0;
  weightsMapped = false;
  get backend(): string {
    return this.model.gpuLayers > 0 && this.model.llama.gpu !== false ? this.model.llama.gpu : "cpu";
  }

  get gpuLayers(): number {
    return this.model.gpuLayers;
  }
  /** Sequences that serve no stream now, with their cached tokens. */
  private readonly free: PooledSequence[] = [];
  /** Sequences taken from the context and not disposed (free or serving a stream). */
  private live = 0;
  /** Streams waiting for the context lock to trim a kept sequence to the prefix they reuse. */
  private trimming = 0;
  private readonly chatWrapper: ChatWrapper;
  /** What an end-of-generation token becomes when a request ignores EOS. */
  private readonly newlineToken: Token;

  constructor(
    readonly spec: LoadSpec,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly timings: LoadTimings,
  ) {
    this.chatWrapper = resolveChatWrapper(model);
    this.newlineToken = model.tokenize("\n")[0]!;
  }

  /** Touches every weight once (page faults, first-use allocations) so the first request is fast. */
  async warmUp(): Promise<void> {
    const started = performance.now();
    const pooled = this.newSequence();
    let consistent = false;
    try {
      const prompt = this.model.tokens.bos !== null ? [this.model.tokens.bos] : this.model.tokenize("a");
      const iterator = pooled.sequence.evaluate(prompt, { temperature: 0 })[Symbol.asyncIterator]();
      await iterator.next();
      await iterator.return?.();
      consistent = true;
    } finally {
      this.release(pooled, consistent);
    }
    this.timings.warmUpMs = performance.now() - started;
  }

  async generate(input: GenerateInput, signal: AbortSignal, sink: TextSink): Promise<GenerateOutcome> {
    const started = performance.now();
    const { tokens: promptTokens, stops } = this.renderPrompt(input);
    if (promptTokens.length >= this.spec.contextSize) {
      throw new RangeError(`prompt is ${promptTokens.length} tokens; the model's context holds ${this.spec.contextSize}`);
    }
    const { pooled, reuse } = await this.takeSequence(promptTokens);
    const sequence = pooled.sequence;
    // The sequence's KV matches its tokens except while a decode or a trim is in flight.
    let consistent = false;
    try {
      await this.trimTo(pooled, reuse);
      consistent = true;
      const maxTokens = Math.min(input.maxTokens, this.spec.contextSize - promptTokens.length);
      const stopMatcher = new StopMatcher([...input.sampling.stop, ...stops]);
      const recent: Token[] = promptTokens.slice(-REPEAT_PENALTY_WINDOW);
      const replacementForEog = input.sampling.ignoreEos ? this.newlineToken : undefined;
      const sampling = input.sampling;
      const iterator = sequence
        .evaluate(promptTokens.slice(reuse), {
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
      // The decode of the next token runs on llama.cpp's thread while this one detokenizes and
      // writes the last token: at most one decode is in flight, started only when the stream
      // will take its token (not after max tokens, not while a neighbour waits for the lock).
      let next: Promise<IteratorResult<Token>> | undefined = signal.aborted ? undefined : iterator.next();
      if (!next) finishReason = "cancelled";
      try {
        while (next) {
          consistent = false;
          const step = await next;
          consistent = true;
          next = undefined;
          if (step.done) break;
          if (signal.aborted) {
            finishReason = "cancelled";
            break;
          }
          let token = step.value;
          let replacement: Token | undefined;
          if (replacementForEog !== undefined && this.model.isEogToken(token)) {
            token = replacementForEog;
            replacement = token;
          }
          if (completionTokens === 0) firstTokenMs = performance.now() - started;
          completionTokens++;
          recent.push(token);
          if (recent.length > REPEAT_PENALTY_WINDOW) recent.shift();
          const wantsMore = completionTokens < maxTokens;
          if (wantsMore && !this.contextLockWanted()) next = iterator.next(replacement as Token);
          pending.push(token);
          const before = recent.length - pending.length;
          const text = this.model.detokenize(pending, false, recent.slice(Math.max(0, before - DETOKENIZE_CONTEXT), before));
          if (!text.endsWith("\uFFFD")) {
            pending = [];
            const { emit, stopped } = stopMatcher.push(text);
            if (emit.length > 0) await sink(emit, completionTokens);
            if (stopped) break;
          }
          if (!wantsMore) {
            finishReason = "length";
            break;
          }
          if (!next) {
            await this.pauseForContextLock();
            if (signal.aborted) {
              finishReason = "cancelled";
              break;
            }
            next = iterator.next(replacement as Token);
          }
        }
      } finally {
        // A decode still in flight (a stop string, a failed write) finishes before the sequence is kept.
        if (next) consistent = await next.then(
          () => true,
          () => false,
        );
        await iterator.return?.();
      }
      const rest = stopMatcher.flush();
      if (rest.length > 0 && finishReason !== "cancelled") await sink(rest, completionTokens);
      return {
        finishReason,
        promptTokens: promptTokens.length,
        cachedPromptTokens: reuse,
        completionTokens,
        firstTokenMs,
        generateMs: performance.now() - started,
      };
    } finally {
      this.release(pooled, consistent);
    }
  }

  /**
   * The free sequence that shares the longest prefix with the prompt (see prompt-cache.ts), or a
   * new one. A disposed sequence returns its slot to the context asynchronously, so a stream
   * that starts right after another failed may have to wait a moment for it.
   */
  private async takeSequence(prompt: readonly Token[]): Promise<{ pooled: PooledSequence; reuse: number }> {
    const deadline = performance.now() + SEQUENCE_RECLAIM_TIMEOUT_MS;
    while (true) {
      const choice = chooseSequence(
        this.free.map(({ sequence, lastUsed, reusable }) => ({ tokens: sequence.contextTokens, lastUsed, reusable })),
        prompt,
        this.context.sequencesLeft > 0,
      );
      if (choice?.kind === "new") return { pooled: this.newSequence(), reuse: 0 };
      if (choice) return { pooled: this.free.splice(choice.index, 1)[0]!, reuse: choice.reuse };
      if (performance.now() > deadline) throw new Error("no sequence was freed in time: the runner is serving its maximum number of streams");
      await pollSoon();
    }
  }

  private newSequence(): PooledSequence {
    const pooled: PooledSequence = { sequence: undefined as unknown as LlamaContextSequence, lastUsed: 0, reusable: true };
    const shiftSize = Math.min(100, Math.ceil(this.context.contextSize / 2)); // node-llama-cpp's default
    pooled.sequence = this.context.getSequence({
      contextShift: {
        size: () => {
          pooled.reusable = false;
          return shiftSize;
        },
      },
    });
    this.live++;
    return pooled;
  }

  /** Erases what the sequence holds after its first `keep` tokens (the context lock: neighbours pause meanwhile). */
  private async trimTo(pooled: PooledSequence, keep: number): Promise<void> {
    if (pooled.sequence.nextTokenIndex > keep) {
      this.trimming++;
      try {
        await pooled.sequence.eraseContextTokenRanges([{ start: keep, end: pooled.sequence.nextTokenIndex }]);
      } finally {
        this.trimming--;
      }
    }
    if (keep === 0) pooled.reusable = true;
  }

  /** Keeps a sequence whose KV matches its tokens for the next request; disposes one that may not. */
  private release(pooled: PooledSequence, consistent: boolean): void {
    if (consistent && !pooled.sequence.disposed) {
      pooled.lastUsed = performance.now();
      this.free.push(pooled);
      return;
    }
    this.live--;
    pooled.sequence.dispose();
  }

  /**
   * node-llama-cpp trims a sequence and returns a disposed one's slot under the context lock,
   * which its batch loop holds for as long as any sequence has a decode queued. While a stream
   * waits for that lock, every stream pauses before its next decode so the loop drains and
   * lets it through (about 1 ms); otherwise busy neighbours would hold it until they all end.
   */
  private contextLockWanted(): boolean {
    return this.trimming > 0 || this.context.sequencesLeft + this.live < this.spec.sequences;
  }

  /** Holds this stream (no decode queued) until no stream waits for the context lock, at most briefly. */
  private async pauseForContextLock(): Promise<void> {
    const deadline = performance.now() + RECLAIM_PAUSE_LIMIT_MS;
    while (this.contextLockWanted() && performance.now() < deadline) await pollSoon();
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
