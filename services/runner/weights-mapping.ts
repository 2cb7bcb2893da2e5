/**
 * Whether a runner maps a model's weights (`useMmap: true`) or reads them into its own memory.
 *
 * Measured on llama.cpp's CPU backend (bench/mmap-vs-read.ts, 100 MB models, page cache warm):
 * a tensor that llama.cpp does not repack is used in place from the mapping, so a mapped load
 * costs no anonymous memory for it (the weights are the page-cache pages, shared, counted once)
 * and takes about half the time of a read (no copy). A read holds the weights twice on the box
 * (llama.cpp's copy + the file's pages in page cache) with the same RSS. So map by default.
 *
 * The exception: tensors llama.cpp repacks for this CPU's matrix kernels (its CPU_REPACK / AMX
 * buffers). Those are copied into an anonymous buffer in the repacked layout whatever useMmap
 * says; with a mapping their file pages stay mapped as well, so they are held twice in RSS.
 * Map when at most MAX_REPACKED_FRACTION of the weight bytes get repacked.
 *
 * Which tensors get repacked: llama.cpp `ggml/src/ggml-cpu/repack.cpp`
 * (`ggml_repack_get_optimal_repack_type`) and `ggml-cpu/amx/common.h` (`qtype_has_amx_kernels`)
 * at the release node-llama-cpp 3.21.1 ships. Only weights that feed a matrix multiplication
 * (2-D, not the token embedding, which is read by row lookups) and whose row count is a
 * multiple of the kernel's interleave. F32, F16 and BF16 are never repacked on CPU.
 *
 * GPU backends: weights are uploaded to device memory; that path is not measured here, so
 * the runner keeps reading them (as node-llama-cpp's "auto" does when it offloads layers).
 */

/** One tensor of a GGUF file, as the decision needs it. */
export interface WeightTensor {
  name: string;
  /** ggml type name: "F32", "F16", "Q8_0", "Q4_0", "Q4_K", … */
  type: string;
  /** dims[0] = row length, dims[1] = rows (GGUF order). */
  dims: readonly number[];
  bytes: number;
}

/** CPU features that select llama.cpp's repacking kernels (the names /proc/cpuinfo uses). */
export interface CpuFeatures {
  avx2: boolean;
  avx512f: boolean;
  /** Intel AMX with int8 tiles (the AMX buffer type). */
  amxInt8: boolean;
  /** Arm NEON dot product (asimddp). */
  neonDotprod: boolean;
  /** Arm int8 matrix multiply (i8mm). */
  neonMatmulInt8: boolean;
}

export type WeightsBackend = { kind: "cpu"; features: CpuFeatures } | { kind: "gpu" };

/** At most this share of the weight bytes held twice when mapped. */
export const MAX_REPACKED_FRACTION = 0.1;

/** A repack rule: the row count must be a multiple of `rowMultiple`. */
type Rule = { when: (cpu: CpuFeatures) => boolean; rowMultiple: number };

const avx2 = (cpu: CpuFeatures) => cpu.avx2;
const dotprod = (cpu: CpuFeatures) => cpu.neonDotprod;
const i8mm = (cpu: CpuFeatures) => cpu.neonDotprod && cpu.neonMatmulInt8;

/** ggml type -> the CPU kernels that repack it (first matching rule wins, as in llama.cpp). */
const REPACK_RULES: Record<string, Rule[]> = {
  Q4_0: [{ when: avx2, rowMultiple: 8 }, { when: i8mm, rowMultiple: 4 }, { when: dotprod, rowMultiple: 4 }],
  Q4_K: [{ when: avx2, rowMultiple: 8 }, { when: i8mm, rowMultiple: 8 }, { when: dotprod, rowMultiple: 8 }],
  Q2_K: [{ when: (cpu) => cpu.avx512f, rowMultiple: 8 }],
  Q5_K: [{ when: i8mm, rowMultiple: 8 }, { when: dotprod, rowMultiple: 8 }],
  Q6_K: [{ when: i8mm, rowMultiple: 8 }, { when: dotprod, rowMultiple: 8 }],
  IQ4_NL: [{ when: avx2, rowMultiple: 8 }, { when: dotprod, rowMultiple: 4 }],
  MXFP4: [{ when: avx2, rowMultiple: 8 }, { when: dotprod, rowMultiple: 4 }],
  Q8_0: [{ when: i8mm, rowMultiple: 4 }, { when: dotprod, rowMultiple: 4 }],
};

/** Types the AMX buffer type takes (any row count) on CPUs with AMX int8. */
const AMX_TYPES = new Set(["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]);

/** Whether llama.cpp's CPU backend copies this tensor into a repacked buffer. */
export function isRepacked(tensor: WeightTensor, cpu: CpuFeatures): boolean {
  if (tensor.dims.length < 2 || tensor.name === "token_embd.weight") return false;
  if (cpu.amxInt8 && AMX_TYPES.has(tensor.type)) return true;
  const rows = tensor.dims[1]!;
  const rule = (REPACK_RULES[tensor.type] ?? []).find((candidate) => candidate.when(cpu));
  return rule !== undefined && rows % rule.rowMultiple === 0;
}

/** Bytes of the weights llama.cpp repacks on this CPU. */
export function repackedBytes(tensors: readonly WeightTensor[], cpu: CpuFeatures): number {
  return tensors.reduce((sum, tensor) => sum + (isRepacked(tensor, cpu) ? tensor.bytes : 0), 0);
}

/** Map the weights when llama.cpp repacks no more than MAX_REPACKED_FRACTION of their bytes. */
export function shouldMapWeights(tensors: readonly WeightTensor[], backend: WeightsBackend): boolean {
  if (backend.kind !== "cpu") return false;
  const total = tensors.reduce((sum, tensor) => sum + tensor.bytes, 0);
  if (total === 0) return true;
  return repackedBytes(tensors, backend.features) <= MAX_REPACKED_FRACTION * total;
}
