import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { byteTokenizerMetadata } from "./byte-tokenizer.js";
import {
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GgmlType,
  GgufValueType,
  LlamaFileType,
  float32ToFloat16Bits,
  ggmlTypeLayout,
  type GgufMetadataEntry,
} from "./gguf-format.js";
import { readGgufHeader } from "./gguf-reader.js";
import { planGgufLayout, writeGguf, type TensorDescriptor, type TensorSource } from "./gguf-writer.js";

export type ForgeWeightType = "f16" | "q8_0";

/** Pass as `tokenizerFrom` to use the built-in byte-level tokenizer. */
export const BYTE_TOKENIZER = "builtin:byte";

export interface ForgeOptions {
  sizeBytes: number;
  outPath: string;
  weightType: ForgeWeightType;
  /**
   * A GGUF whose `tokenizer.*` metadata is copied (it must exist), or BYTE_TOKENIZER.
   * Default: models/stories260K.gguf in the project if it exists, else BYTE_TOKENIZER.
   */
  tokenizerFrom?: string;
  seed?: number;
  /** Default 2048. */
  contextLength?: number;
}

export interface ForgedModel {
  path: string;
  bytes: number;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  vocabSize: number;
  weightType: ForgeWeightType;
  contextLength: number;
  /** The GGUF path the tokenizer came from, or BYTE_TOKENIZER. */
  tokenizerSource: string;
}

interface Architecture {
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nLayer: number;
  nFf: number;
}

/**
 * Widths in the proportions of real llama-family models; `layers` is the depth a model of that
 * width typically has. The widest entry whose typical model fits the request is chosen, then the
 * layer count and feed-forward width are fitted to the requested size.
 */
const WIDTH_LADDER: ReadonlyArray<{ nEmbd: number; nHead: number; nHeadKv: number; layers: number }> = [
  { nEmbd: 64, nHead: 2, nHeadKv: 2, layers: 2 },
  { nEmbd: 128, nHead: 4, nHeadKv: 4, layers: 4 },
  { nEmbd: 256, nHead: 4, nHeadKv: 4, layers: 6 },
  { nEmbd: 384, nHead: 6, nHeadKv: 6, layers: 6 },
  { nEmbd: 512, nHead: 8, nHeadKv: 8, layers: 8 },
  { nEmbd: 768, nHead: 12, nHeadKv: 12, layers: 12 },
  { nEmbd: 1024, nHead: 16, nHeadKv: 8, layers: 16 },
  { nEmbd: 1536, nHead: 24, nHeadKv: 8, layers: 18 },
  { nEmbd: 2048, nHead: 32, nHeadKv: 4, layers: 22 },
  { nEmbd: 3072, nHead: 24, nHeadKv: 8, layers: 28 },
  { nEmbd: 4096, nHead: 32, nHeadKv: 8, layers: 32 },
];

/** Feed-forward widths are kept multiples of the Q8_0 block so every row length quantizes. */
const FF_MULTIPLE = 32;
const MAX_SIZE_ERROR = 0.05;
const WEIGHT_STD = 0.02;
const RMS_NORM_EPSILON = 1e-5;
const ROPE_FREQ_BASE = 10000;
const CHUNK_BYTES = 4 << 20;

const WEIGHT_TYPES: Record<ForgeWeightType, { tensorType: number; fileType: number }> = {
  f16: { tensorType: GgmlType.F16, fileType: LlamaFileType.MOSTLY_F16 },
  q8_0: { tensorType: GgmlType.Q8_0, fileType: LlamaFileType.MOSTLY_Q8_0 },
};

function defaultFeedForward(nEmbd: number): number {
  return Math.ceil((nEmbd * 8) / 3 / FF_MULTIPLE) * FF_MULTIPLE;
}

function findProjectRoot(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(directory, "package.json"))) {
    const parent = dirname(directory);
    if (parent === directory) throw new Error("forge: cannot find the project root (no package.json above forge/)");
    directory = parent;
  }
  return directory;
}

export function defaultTokenizerPath(): string {
  return resolve(findProjectRoot(), "models/stories260K.gguf");
}

async function loadTokenizer(tokenizerFrom: string | undefined): Promise<{ source: string; metadata: GgufMetadataEntry[] }> {
  let source = tokenizerFrom;
  if (source === undefined) {
    const defaultPath = defaultTokenizerPath();
    source = existsSync(defaultPath) ? defaultPath : BYTE_TOKENIZER;
  }
  if (source === BYTE_TOKENIZER) return { source, metadata: byteTokenizerMetadata() };
  if (!existsSync(source)) {
    throw new Error(`forge: tokenizerFrom "${source}" does not exist (pass "${BYTE_TOKENIZER}" for the built-in tokenizer)`);
  }
  const header = await readGgufHeader(source);
  const metadata = header.metadata.filter((entry) => entry.key.startsWith("tokenizer."));
  return { source, metadata };
}

function vocabSizeOf(tokenizer: readonly GgufMetadataEntry[], source: string): number {
  const tokens = tokenizer.find((entry) => entry.key === "tokenizer.ggml.tokens")?.value;
  if (typeof tokens !== "object" || tokens.items.length === 0) {
    throw new Error(`forge: ${source} has no tokenizer.ggml.tokens array`);
  }
  return tokens.items.length;
}

function architectureMetadata(
  architecture: Architecture,
  options: { name: string; fileType: number; contextLength: number; vocabSize: number },
): GgufMetadataEntry[] {
  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: GgufValueType.UINT32, value });
  const f32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: GgufValueType.FLOAT32, value });
  const str = (key: string, value: string): GgufMetadataEntry => ({ key, type: GgufValueType.STRING, value });
  return [
    str("general.architecture", "llama"),
    str("general.name", options.name),
    u32(GGUF_ALIGNMENT_KEY, GGUF_DEFAULT_ALIGNMENT),
    u32("general.file_type", options.fileType),
    u32("llama.vocab_size", options.vocabSize),
    u32("llama.context_length", options.contextLength),
    u32("llama.embedding_length", architecture.nEmbd),
    u32("llama.block_count", architecture.nLayer),
    u32("llama.feed_forward_length", architecture.nFf),
    u32("llama.attention.head_count", architecture.nHead),
    u32("llama.attention.head_count_kv", architecture.nHeadKv),
    u32("llama.rope.dimension_count", architecture.nEmbd / architecture.nHead),
    f32("llama.rope.freq_base", ROPE_FREQ_BASE),
    f32("llama.attention.layer_norm_rms_epsilon", RMS_NORM_EPSILON),
  ];
}

/** Tensor shapes in GGUF dims order (ne0 = row length), as llama.cpp's llama loader expects them. */
function tensorDescriptors(architecture: Architecture, vocabSize: number, weightType: number): TensorDescriptor[] {
  const { nEmbd, nLayer, nFf, nHead, nHeadKv } = architecture;
  const kvWidth = (nEmbd / nHead) * nHeadKv;
  const descriptors: TensorDescriptor[] = [
    { name: "token_embd.weight", dims: [nEmbd, vocabSize], type: weightType },
    { name: "output_norm.weight", dims: [nEmbd], type: GgmlType.F32 },
    { name: "output.weight", dims: [nEmbd, vocabSize], type: weightType },
  ];
  for (let layer = 0; layer < nLayer; layer++) {
    const prefix = `blk.${layer}`;
    descriptors.push(
      { name: `${prefix}.attn_norm.weight`, dims: [nEmbd], type: GgmlType.F32 },
      { name: `${prefix}.attn_q.weight`, dims: [nEmbd, nEmbd], type: weightType },
      { name: `${prefix}.attn_k.weight`, dims: [nEmbd, kvWidth], type: weightType },
      { name: `${prefix}.attn_v.weight`, dims: [nEmbd, kvWidth], type: weightType },
      { name: `${prefix}.attn_output.weight`, dims: [nEmbd, nEmbd], type: weightType },
      { name: `${prefix}.ffn_norm.weight`, dims: [nEmbd], type: GgmlType.F32 },
      { name: `${prefix}.ffn_gate.weight`, dims: [nEmbd, nFf], type: weightType },
      { name: `${prefix}.ffn_up.weight`, dims: [nEmbd, nFf], type: weightType },
      { name: `${prefix}.ffn_down.weight`, dims: [nFf, nEmbd], type: weightType },
    );
  }
  return descriptors;
}

interface ModelPlan {
  architecture: Architecture;
  metadata: GgufMetadataEntry[];
  tensors: TensorDescriptor[];
  fileSize: number;
}

function planModel(
  architecture: Architecture,
  tokenizer: readonly GgufMetadataEntry[],
  options: { name: string; weightType: ForgeWeightType; contextLength: number; vocabSize: number },
): ModelPlan {
  const { tensorType, fileType } = WEIGHT_TYPES[options.weightType];
  const metadata = [...architectureMetadata(architecture, { ...options, fileType }), ...tokenizer];
  const tensors = tensorDescriptors(architecture, options.vocabSize, tensorType);
  return { architecture, metadata, tensors, fileSize: planGgufLayout(metadata, tensors).fileSize };
}

/** Picks the architecture whose file size is closest to `sizeBytes` (see WIDTH_LADDER). */
function fitArchitecture(sizeBytes: number, planFor: (architecture: Architecture) => ModelPlan): ModelPlan {
  const typical = (rung: (typeof WIDTH_LADDER)[number]): Architecture => ({
    nEmbd: rung.nEmbd,
    nHead: rung.nHead,
    nHeadKv: rung.nHeadKv,
    nLayer: rung.layers,
    nFf: defaultFeedForward(rung.nEmbd),
  });
  const rung = [...WIDTH_LADDER].reverse().find((candidate) => planFor(typical(candidate)).fileSize <= sizeBytes) ?? WIDTH_LADDER[0]!;
  const base = typical(rung);

  const withoutLayers = planFor({ ...base, nLayer: 0 }).fileSize;
  const perLayer = planFor({ ...base, nLayer: 1 }).fileSize - withoutLayers;
  const nLayer = Math.max(1, Math.round((sizeBytes - withoutLayers) / perLayer));

  // File size grows with nFf, so binary-search the multiple of FF_MULTIPLE closest to the request.
  let low = 1;
  let high = Math.max(2, Math.ceil((base.nFf * 4) / FF_MULTIPLE));
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (planFor({ ...base, nLayer, nFf: middle * FF_MULTIPLE }).fileSize <= sizeBytes) low = middle;
    else high = middle;
  }
  const below = planFor({ ...base, nLayer, nFf: low * FF_MULTIPLE });
  const above = planFor({ ...base, nLayer, nFf: high * FF_MULTIPLE });
  return Math.abs(below.fileSize - sizeBytes) <= Math.abs(above.fileSize - sizeBytes) ? below : above;
}

// --- Random weights -------------------------------------------------------------------------

/** xorshift128 generator; state is seeded from (seed, stream) so each tensor is reproducible on its own. */
class RandomStream {
  private readonly state = new Uint32Array(4);

  constructor(seed: number, stream: number) {
    let mix = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    for (let index = 0; index < 4; index++) {
      mix = (mix + 0x6d2b79f5) >>> 0;
      let value = Math.imul(mix ^ (mix >>> 15), mix | 1);
      value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
      this.state[index] = (value ^ (value >>> 14)) >>> 0;
    }
    if (this.state.every((word) => word === 0)) this.state[0] = 1;
  }

  /** Fills `target` with lookups into a 65536-entry table, two per random word. */
  fillFromTable<T extends Uint16Array | Uint8Array>(target: T, start: number, end: number, table: T): void {
    const state = this.state;
    let x = state[0]!, y = state[1]!, z = state[2]!, w = state[3]!;
    let index = start;
    while (index < end) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      target[index++] = table[w & 0xffff]!;
      if (index < end) target[index++] = table[w >>> 16]!;
    }
    state[0] = x;
    state[1] = y;
    state[2] = z;
    state[3] = w;
  }
}

/**
 * 65536 standard-normal samples at equal-probability grid points of the Box-Muller transform;
 * indexing it with 16 uniform random bits draws from a discretized N(0, 1).
 */
function standardNormalGrid(): Float64Array {
  const grid = new Float64Array(65536);
  for (let index = 0; index < 65536; index++) {
    const radiusUniform = ((index >>> 8) + 0.5) / 256;
    const angleUniform = ((index & 0xff) + 0.5) / 256;
    grid[index] = Math.sqrt(-2 * Math.log(radiusUniform)) * Math.cos(2 * Math.PI * angleUniform);
  }
  return grid;
}

interface WeightTables {
  f16: Uint16Array;
  q8Quants: Uint8Array;
  q8ScaleBits: number;
}

let weightTables: WeightTables | undefined;

function getWeightTables(): WeightTables {
  if (weightTables !== undefined) return weightTables;
  const grid = standardNormalGrid();
  const largest = grid.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
  const q8Scale = (WEIGHT_STD * largest) / 127;
  const f16 = new Uint16Array(65536);
  const q8Quants = new Uint8Array(65536);
  for (let index = 0; index < 65536; index++) {
    f16[index] = float32ToFloat16Bits(grid[index]! * WEIGHT_STD);
    q8Quants[index] = Math.round((grid[index]! * 127) / largest) & 0xff;
  }
  weightTables = { f16, q8Quants, q8ScaleBits: float32ToFloat16Bits(q8Scale) };
  return weightTables;
}

function* onesF32Chunks(elementCount: number): Iterable<Uint8Array> {
  const values = new Float32Array(elementCount).fill(1);
  yield new Uint8Array(values.buffer);
}

function* randomF16Chunks(elementCount: number, random: RandomStream): Iterable<Uint8Array> {
  const { f16 } = getWeightTables();
  const buffer = new Uint16Array(Math.min(elementCount, CHUNK_BYTES / 2));
  for (let done = 0; done < elementCount; done += buffer.length) {
    const count = Math.min(buffer.length, elementCount - done);
    random.fillFromTable(buffer, 0, count, f16);
    yield new Uint8Array(buffer.buffer, 0, count * 2);
  }
}

function* randomQ8Chunks(elementCount: number, random: RandomStream): Iterable<Uint8Array> {
  const { q8Quants, q8ScaleBits } = getWeightTables();
  const { blockLength, blockBytes } = ggmlTypeLayout(GgmlType.Q8_0);
  const blockCount = elementCount / blockLength;
  const blocksPerChunk = Math.min(blockCount, Math.floor(CHUNK_BYTES / blockBytes));
  const buffer = new Uint8Array(blocksPerChunk * blockBytes);
  for (let done = 0; done < blockCount; done += blocksPerChunk) {
    const count = Math.min(blocksPerChunk, blockCount - done);
    for (let block = 0; block < count; block++) {
      const at = block * blockBytes;
      buffer[at] = q8ScaleBits & 0xff;
      buffer[at + 1] = q8ScaleBits >>> 8;
      random.fillFromTable(buffer, at + 2, at + blockBytes, q8Quants);
    }
    yield buffer.subarray(0, count * blockBytes);
  }
}

function tensorSource(descriptor: TensorDescriptor, seed: number, stream: number): TensorSource {
  const elementCount = descriptor.dims.reduce((product, dim) => product * dim, 1);
  const chunks = (): Iterable<Uint8Array> => {
    switch (descriptor.type) {
      case GgmlType.F32: return onesF32Chunks(elementCount);
      case GgmlType.F16: return randomF16Chunks(elementCount, new RandomStream(seed, stream));
      case GgmlType.Q8_0: return randomQ8Chunks(elementCount, new RandomStream(seed, stream));
      default: throw new Error(`forge: no weight generator for tensor type ${descriptor.type}`);
    }
  };
  return { ...descriptor, chunks };
}

// --- Entry point ----------------------------------------------------------------------------

function requirePositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`forge: ${name} must be a positive integer, got ${value}`);
}

/**
 * Writes a llama-architecture GGUF with random weights (normal, std 0.02; norms 1) whose file
 * size is within 5% of `sizeBytes`. Same options and seed give a byte-identical file.
 */
export async function forgeModel(options: ForgeOptions): Promise<ForgedModel> {
  const { sizeBytes, outPath, weightType, seed = 1, contextLength = 2048 } = options;
  requirePositiveInteger("sizeBytes", sizeBytes);
  requirePositiveInteger("contextLength", contextLength);
  if (!Number.isSafeInteger(seed)) throw new Error(`forge: seed must be an integer, got ${seed}`);
  if (!Object.hasOwn(WEIGHT_TYPES, weightType)) throw new Error(`forge: weightType must be "f16" or "q8_0", got "${weightType}"`);

  const tokenizer = await loadTokenizer(options.tokenizerFrom);
  const vocabSize = vocabSizeOf(tokenizer.metadata, tokenizer.source);
  const name = `forged-llama-${weightType}-seed${seed}`;
  const plan = fitArchitecture(sizeBytes, (architecture) =>
    planModel(architecture, tokenizer.metadata, { name, weightType, contextLength, vocabSize }),
  );
  if (Math.abs(plan.fileSize - sizeBytes) > sizeBytes * MAX_SIZE_ERROR) {
    const closest = plan.fileSize > sizeBytes ? "the smallest possible is" : "the closest is";
    throw new Error(
      `forge: cannot make a ${weightType} model of ${sizeBytes} bytes with a ${vocabSize}-token vocabulary; ` +
        `${closest} ${plan.fileSize} bytes`,
    );
  }

  await mkdir(dirname(resolve(outPath)), { recursive: true });
  const sources = plan.tensors.map((descriptor, index) => tensorSource(descriptor, seed, index));
  const layout = await writeGguf(outPath, plan.metadata, sources);
  const { architecture } = plan;
  return {
    path: outPath,
    bytes: layout.fileSize,
    nLayer: architecture.nLayer,
    nEmbd: architecture.nEmbd,
    nHead: architecture.nHead,
    nHeadKv: architecture.nHeadKv,
    nFf: architecture.nFf,
    vocabSize,
    weightType,
    contextLength,
    tokenizerSource: tokenizer.source,
  };
}
