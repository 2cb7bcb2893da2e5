import { readFile, stat } from "node:fs/promises";
import { GgmlType, readGgufFileInfo } from "node-llama-cpp";
import type { CpuFeatures, WeightTensor } from "./weights-mapping.js";

/**
 * What `shouldMapWeights` needs about a model file: its tensors (type name, dims, bytes from
 * the distance to the next tensor's offset) read from the GGUF header with node-llama-cpp.
 */
export async function readWeightTensors(path: string): Promise<WeightTensor[]> {
  const info = await readGgufFileInfo(path, { logWarnings: false, spliceSplitFiles: false });
  const tensors = [...(info.tensorInfo ?? [])].sort((a, b) => Number(a.fileOffset) - Number(b.fileOffset));
  const fileBytes = (await stat(path)).size;
  return tensors.map((tensor, index) => ({
    name: tensor.name,
    type: GgmlType[tensor.ggmlType] ?? `type ${tensor.ggmlType}`,
    dims: tensor.dimensions.map(Number),
    bytes: Number(tensors[index + 1]?.fileOffset ?? fileBytes) - Number(tensor.fileOffset),
  }));
}

/** This CPU's features from /proc/cpuinfo (all false where it cannot be read). */
export async function readCpuFeatures(): Promise<CpuFeatures> {
  return parseCpuFeatures(await readFile("/proc/cpuinfo", "utf8").catch(() => ""));
}

/** Features from /proc/cpuinfo text: x86 "flags" lines, Arm "Features" lines (first CPU). */
export function parseCpuFeatures(cpuinfo: string): CpuFeatures {
  const line = /^(?:flags|Features)\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? "";
  const flags = new Set(line.trim().split(/\s+/));
  return {
    avx2: flags.has("avx2"),
    avx512f: flags.has("avx512f"),
    amxInt8: flags.has("amx_int8"),
    neonDotprod: flags.has("asimddp"),
    neonMatmulInt8: flags.has("i8mm"),
  };
}
