import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { MAX_REPACKED_FRACTION, isRepacked, repackedBytes, shouldMapWeights, type CpuFeatures, type WeightTensor } from "../../services/runner/weights-mapping.js";
import { parseCpuFeatures, readWeightTensors } from "../../services/runner/weight-tensors.js";
import { storiesModel as TINY_MODEL } from "../support/paths.js";

const NONE: CpuFeatures = { avx2: false, avx512f: false, amxInt8: false, neonDotprod: false, neonMatmulInt8: false };
const X86_AVX2: CpuFeatures = { ...NONE, avx2: true };
const X86_AVX512: CpuFeatures = { ...X86_AVX2, avx512f: true };
const X86_AMX: CpuFeatures = { ...X86_AVX512, amxInt8: true };
const ARM_DOTPROD: CpuFeatures = { ...NONE, neonDotprod: true };
const ARM_I8MM: CpuFeatures = { ...ARM_DOTPROD, neonMatmulInt8: true };

const BYTES_PER_ELEMENT: Record<string, number> = { F32: 4, F16: 2, Q8_0: 34 / 32, Q4_0: 18 / 32, Q4_K: 144 / 256, Q2_K: 84 / 256, Q6_K: 210 / 256 };

function tensor(name: string, type: string, dims: number[]): WeightTensor {
  const elements = dims.reduce((product, dim) => product * dim, 1);
  return { name, type, dims, bytes: Math.round(elements * (BYTES_PER_ELEMENT[type] ?? 1)) };
}

/** A llama-shaped model: embedding, norms (F32), attention and feed-forward weights of `type`. */
function llamaModel(type: string, { embd = 512, ff = 1536, vocab = 512, layers = 2, embeddingType = type } = {}): WeightTensor[] {
  const tensors = [tensor("token_embd.weight", embeddingType, [embd, vocab]), tensor("output_norm.weight", "F32", [embd]), tensor("output.weight", type, [embd, vocab])];
  for (let layer = 0; layer < layers; layer++) {
    const prefix = `blk.${layer}`;
    tensors.push(
      tensor(`${prefix}.attn_norm.weight`, "F32", [embd]),
      ...["attn_q", "attn_k", "attn_v", "attn_output"].map((part) => tensor(`${prefix}.${part}.weight`, type, [embd, embd])),
      tensor(`${prefix}.ffn_norm.weight`, "F32", [embd]),
      tensor(`${prefix}.ffn_gate.weight`, type, [embd, ff]),
      tensor(`${prefix}.ffn_up.weight`, type, [embd, ff]),
      tensor(`${prefix}.ffn_down.weight`, type, [ff, embd]),
    );
  }
  return tensors;
}

describe("mapping weights vs reading them (llama.cpp's CPU repacking)", () => {
  const cases: { name: string; tensors: WeightTensor[]; cpu: CpuFeatures | "gpu"; map: boolean }[] = [
    // measured on an AVX2 EPYC (bench/mmap-vs-read.ts): no CPU_REPACK buffer, same RSS, load ~2x faster mapped
    { name: "F16 weights on x86 AVX2 are used in place: map", tensors: llamaModel("F16"), cpu: X86_AVX2, map: true },
    { name: "Q8_0 weights on x86 AVX2 are not repacked: map", tensors: llamaModel("Q8_0"), cpu: X86_AVX2, map: true },
    { name: "F32 weights are never repacked: map", tensors: llamaModel("F32"), cpu: ARM_I8MM, map: true },
    { name: "Q4_0 weights on x86 AVX2 are repacked: read", tensors: llamaModel("Q4_0"), cpu: X86_AVX2, map: false },
    { name: "Q4_0 weights on a CPU without AVX2 or NEON stay as they are: map", tensors: llamaModel("Q4_0"), cpu: NONE, map: true },
    { name: "Q8_0 weights on Arm with dot product are repacked: read", tensors: llamaModel("Q8_0"), cpu: ARM_DOTPROD, map: false },
    { name: "Q4_K weights on Arm with int8 matmul are repacked: read", tensors: llamaModel("Q4_K"), cpu: ARM_I8MM, map: false },
    { name: "Q2_K needs AVX-512 to be repacked: map on AVX2", tensors: llamaModel("Q2_K"), cpu: X86_AVX2, map: true },
    { name: "Q2_K on AVX-512 is repacked: read", tensors: llamaModel("Q2_K"), cpu: X86_AVX512, map: false },
    { name: "Q8_0 on a CPU with AMX goes to the AMX buffer: read", tensors: llamaModel("Q8_0"), cpu: X86_AMX, map: false },
    {
      name: "only the Q4_0 embedding (row lookups, never repacked) in an F16 model: map",
      tensors: llamaModel("F16", { embeddingType: "Q4_0" }),
      cpu: X86_AVX2,
      map: true,
    },
    {
      name: "Q4_0 weights whose row counts are not a multiple of 8 are not repacked on AVX2: map",
      tensors: ["attn_q", "attn_k", "ffn_up"].map((part) => tensor(`blk.0.${part}.weight`, "Q4_0", [512, 516])),
      cpu: X86_AVX2,
      map: true,
    },
    { name: "a GPU backend keeps reading (not measured)", tensors: llamaModel("F16"), cpu: "gpu", map: false },
    { name: "a file without tensors maps", tensors: [], cpu: X86_AVX2, map: true },
  ];
  for (const { name, tensors, cpu, map } of cases) {
    it(name, () => {
      assert.equal(shouldMapWeights(tensors, cpu === "gpu" ? { kind: "gpu" } : { kind: "cpu", features: cpu }), map);
    });
  }

  it(`maps while at most ${MAX_REPACKED_FRACTION * 100}% of the weight bytes are repacked`, () => {
    // turn whole F16 tensors into repacked Q4_0 ones until just past the limit
    const mixed = llamaModel("F16", { layers: 8 });
    const total = () => mixed.reduce((sum, entry) => sum + entry.bytes, 0);
    let index = mixed.findIndex((entry) => entry.name === "blk.0.ffn_down.weight");
    while (repackedBytes(mixed, X86_AVX2) <= MAX_REPACKED_FRACTION * total()) {
      assert.ok(shouldMapWeights(mixed, { kind: "cpu", features: X86_AVX2 }));
      const entry = mixed[index]!;
      mixed[index] = { ...entry, type: "Q4_0", bytes: Math.round(entry.bytes * (BYTES_PER_ELEMENT.Q4_0! / BYTES_PER_ELEMENT.F16!)) };
      index = mixed.findIndex((candidate, at) => at > index && candidate.type === "F16" && candidate.dims.length === 2);
    }
    assert.equal(shouldMapWeights(mixed, { kind: "cpu", features: X86_AVX2 }), false);
  });

  it("1-D tensors (norms) and the token embedding are never repacked", () => {
    assert.equal(isRepacked(tensor("blk.0.attn_norm.weight", "Q4_0", [512]), X86_AMX), false);
    assert.equal(isRepacked(tensor("token_embd.weight", "Q4_0", [512, 512]), X86_AMX), false);
    assert.equal(isRepacked(tensor("output.weight", "Q4_0", [512, 512]), X86_AVX2), true);
  });

  it("reads the shipped stories260K model's tensors, which this decision maps on x86 AVX2", async () => {
    const tensors = await readWeightTensors(TINY_MODEL);
    assert.ok(tensors.length > 0);
    const total = tensors.reduce((sum, entry) => sum + entry.bytes, 0);
    assert.ok(total > 0 && total < statSync(TINY_MODEL).size, `tensor bytes ${total} vs file ${statSync(TINY_MODEL).size}`);
    assert.ok(tensors.every((entry) => entry.bytes > 0 && /^[A-Z0-9_]+$/.test(entry.type)), JSON.stringify(tensors.slice(0, 3)));
    assert.equal(shouldMapWeights(tensors, { kind: "cpu", features: X86_AVX2 }), true);
  });
});

describe("CPU features from /proc/cpuinfo", () => {
  const cases: { name: string; cpuinfo: string; features: CpuFeatures }[] = [
    { name: "x86 with AVX2", cpuinfo: "processor\t: 0\nflags\t\t: fpu sse2 avx f16c fma avx2 bmi2\n", features: X86_AVX2 },
    { name: "x86 with AVX-512 and AMX", cpuinfo: "flags\t\t: avx2 avx512f avx512bw amx_tile amx_int8\n", features: X86_AMX },
    { name: "Arm with dot product and i8mm", cpuinfo: "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\n", features: ARM_I8MM },
    { name: "unreadable", cpuinfo: "", features: NONE },
  ];
  for (const { name, cpuinfo, features } of cases) it(name, () => assert.deepEqual(parseCpuFeatures(cpuinfo), features));
});
