// GGUF file-format vocabulary shared by the reader and the writer.
// All multi-byte values in a GGUF file are little-endian.

/** "GGUF" read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_ALIGNMENT_KEY = "general.alignment";

/** Type tags of metadata values. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** 64-bit integers are bigint; other numbers are number. */
export type GgufScalar = number | bigint | boolean | string;

export interface GgufArrayValue {
  itemType: GgufValueType;
  items: Array<GgufScalar | GgufArrayValue>;
}

export type GgufValue = GgufScalar | GgufArrayValue;

export interface GgufMetadataEntry {
  key: string;
  type: GgufValueType;
  value: GgufValue;
}

/** ggml tensor types this project writes (the reader passes other type ids through as numbers). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q8_0: 8,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

interface GgmlTypeLayout {
  name: string;
  /** Values per block; a row length (ne0) must be a multiple of it. */
  blockLength: number;
  blockBytes: number;
}

const GGML_TYPE_LAYOUTS: ReadonlyMap<number, GgmlTypeLayout> = new Map([
  [GgmlType.F32, { name: "F32", blockLength: 1, blockBytes: 4 }],
  [GgmlType.F16, { name: "F16", blockLength: 1, blockBytes: 2 }],
  // Q8_0 block: one f16 scale followed by 32 signed 8-bit quants.
  [GgmlType.Q8_0, { name: "Q8_0", blockLength: 32, blockBytes: 2 + 32 }],
]);

export function ggmlTypeLayout(type: number): GgmlTypeLayout {
  const layout = GGML_TYPE_LAYOUTS.get(type);
  if (layout === undefined) throw new Error(`Unsupported ggml tensor type id ${type}`);
  return layout;
}

/** Byte size of a tensor; dims are in GGUF order (dims[0] = ne0 = row length). */
export function tensorByteSize(type: number, dims: readonly number[]): number {
  const { name, blockLength, blockBytes } = ggmlTypeLayout(type);
  const rowLength = dims[0] ?? 1;
  if (rowLength % blockLength !== 0) {
    throw new Error(`${name} row length ${rowLength} is not a multiple of its block length ${blockLength}`);
  }
  const rowCount = dims.slice(1).reduce((product, dim) => product * dim, 1);
  return (rowLength / blockLength) * blockBytes * rowCount;
}

/** llama.cpp `general.file_type` values (LLAMA_FTYPE_*). */
export const LlamaFileType = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q8_0: 7,
} as const;

export interface GgufTensorInfo {
  name: string;
  /** GGUF order: dims[0] = ne0 (row length). */
  dims: number[];
  type: number;
  /** Offset from the start of the tensor data section. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  metadata: GgufMetadataEntry[];
  tensors: GgufTensorInfo[];
  /** Absolute file offset where the tensor data section starts. */
  dataOffset: number;
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function findMetadata(header: Pick<GgufHeader, "metadata">, key: string): GgufMetadataEntry | undefined {
  return header.metadata.find((entry) => entry.key === key);
}

const float32Scratch = new Float32Array(1);
const float32ScratchBits = new Uint32Array(float32Scratch.buffer);

/** IEEE half-precision bits of `value`, rounded to nearest even (overflow becomes ±Infinity). */
export function float32ToFloat16Bits(value: number): number {
  float32Scratch[0] = value;
  const bits = float32ScratchBits[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const fullMantissa = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let half = fullMantissa >>> shift;
    const remainder = fullMantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}
