import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BYTE_TOKENIZER, defaultTokenizerPath, forgeModel, type ForgedModel } from "../forge/forge-model.js";
import {
  GgmlType,
  GgufValueType,
  findMetadata,
  tensorByteSize,
  type GgufHeader,
  type GgufMetadataEntry,
} from "../forge/gguf-format.js";
import { readGgufHeader } from "../forge/gguf-reader.js";
import { writeGguf } from "../forge/gguf-writer.js";
import { parseSize } from "../common/parse-size.js";

describe("parseSize", () => {
  const valid: Array<[string, number]> = [
    ["200MB", 200_000_000],
    ["1.5GiB", 1_610_612_736],
    ["600MiB", 629_145_600],
    ["1048576", 1_048_576],
    ["0", 0],
    ["42B", 42],
    ["1kB", 1000],
    ["1.5KB", 1500],
    ["2KiB", 2048],
    ["0.5MB", 500_000],
    ["3GB", 3_000_000_000],
    ["1TiB", 1_099_511_627_776],
    ["  64 MiB ", 67_108_864],
  ];
  for (const [input, expected] of valid) {
    it(`parses ${JSON.stringify(input)} as ${expected}`, () => {
      assert.equal(parseSize(input), expected);
    });
  }

  const invalid: Array<[string, RegExp]> = [
    ["", /expected a non-negative number/],
    ["abc", /expected a non-negative number/],
    ["-5MB", /expected a non-negative number/],
    ["1e6", /expected a non-negative number/],
    ["5mb", /unknown unit "mb"/],
    ["5M", /unknown unit "M"/],
    ["MB", /expected a non-negative number/],
    ["5MB5", /expected a non-negative number/],
    ["1.5", /not a whole number of bytes/],
    ["0.1B", /not a whole number of bytes/],
    [".5MB", /expected a non-negative number/],
    ["99999999TB", /larger than/],
  ];
  for (const [input, reason] of invalid) {
    it(`rejects ${JSON.stringify(input)} with a message that explains why`, () => {
      assert.throws(
        () => parseSize(input),
        (error: unknown) =>
          error instanceof Error &&
          reason.test(error.message) &&
          error.message.includes(JSON.stringify(input)) &&
          error.message.includes('e.g. "200MB"'),
      );
    });
  }
});

describe("GGUF writer and reader", () => {
  let directory: string;
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "forge-gguf-"));
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it("round-trips every metadata value type and the tensor layout", async () => {
    const metadata: GgufMetadataEntry[] = [
      { key: "u8", type: GgufValueType.UINT8, value: 200 },
      { key: "i8", type: GgufValueType.INT8, value: -100 },
      { key: "u16", type: GgufValueType.UINT16, value: 60000 },
      { key: "i16", type: GgufValueType.INT16, value: -30000 },
      { key: "u32", type: GgufValueType.UINT32, value: 4_000_000_000 },
      { key: "i32", type: GgufValueType.INT32, value: -2_000_000_000 },
      { key: "f32", type: GgufValueType.FLOAT32, value: 0.5 },
      { key: "f64", type: GgufValueType.FLOAT64, value: Math.PI },
      { key: "u64", type: GgufValueType.UINT64, value: 2n ** 60n },
      { key: "i64", type: GgufValueType.INT64, value: -(2n ** 60n) },
      { key: "bool", type: GgufValueType.BOOL, value: true },
      { key: "string", type: GgufValueType.STRING, value: "héllo ▁ world" },
      {
        key: "nested",
        type: GgufValueType.ARRAY,
        value: {
          itemType: GgufValueType.ARRAY,
          items: [
            { itemType: GgufValueType.STRING, items: ["a", "bc"] },
            { itemType: GgufValueType.STRING, items: [] },
          ],
        },
      },
    ];
    const vector = new Float32Array([1, 2, 3]);
    const path = join(directory, "roundtrip.gguf");
    const layout = await writeGguf(path, metadata, [
      { name: "vector", dims: [3], type: GgmlType.F32, chunks: () => [new Uint8Array(vector.buffer)] },
      { name: "matrix", dims: [32, 2], type: GgmlType.Q8_0, chunks: () => [new Uint8Array(68)] },
    ]);

    const header = await readGgufHeader(path);
    assert.equal(header.version, 3);
    assert.equal(header.alignment, 32);
    assert.deepEqual(header.metadata, metadata);
    assert.deepEqual(
      header.tensors.map(({ name, dims, type, offset }) => ({ name, dims, type, offset })),
      [
        { name: "vector", dims: [3], type: GgmlType.F32, offset: 0 },
        { name: "matrix", dims: [32, 2], type: GgmlType.Q8_0, offset: 32 },
      ],
    );
    assert.equal(header.dataOffset, layout.dataOffset);
    assert.equal((await stat(path)).size, header.dataOffset + 32 + 68);
    const bytes = await readFile(path);
    assert.deepEqual(new Float32Array(bytes.buffer.slice(bytes.byteOffset + header.dataOffset, bytes.byteOffset + header.dataOffset + 12)), vector);
  });

  it("removes the partial file when a producer yields the wrong number of bytes", async () => {
    const path = join(directory, "short.gguf");
    await assert.rejects(
      writeGguf(path, [], [{ name: "short", dims: [4], type: GgmlType.F32, chunks: () => [new Uint8Array(8)] }]),
      /yielded 8 of 16 bytes/,
    );
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(`${path}.partial`), false);
  });
});

function metadataNumber(header: GgufHeader, key: string): number {
  const value = findMetadata(header, key)?.value;
  assert.equal(typeof value, "number", `${key} should be a number`);
  return value as number;
}

function assertWellFormedLlama(header: GgufHeader, forged: ForgedModel, fileSize: number): void {
  assert.equal(header.version, 3);
  assert.equal(header.alignment, 32);
  assert.equal(findMetadata(header, "general.architecture")?.value, "llama");
  assert.equal(typeof findMetadata(header, "general.name")?.value, "string");
  assert.equal(metadataNumber(header, "general.file_type"), forged.weightType === "f16" ? 1 : 7);
  assert.equal(metadataNumber(header, "llama.context_length"), forged.contextLength);
  assert.equal(metadataNumber(header, "llama.embedding_length"), forged.nEmbd);
  assert.equal(metadataNumber(header, "llama.block_count"), forged.nLayer);
  assert.equal(metadataNumber(header, "llama.feed_forward_length"), forged.nFf);
  assert.equal(metadataNumber(header, "llama.attention.head_count"), forged.nHead);
  assert.equal(metadataNumber(header, "llama.attention.head_count_kv"), forged.nHeadKv);
  assert.equal(metadataNumber(header, "llama.rope.dimension_count"), forged.nEmbd / forged.nHead);
  assert.ok(metadataNumber(header, "llama.attention.layer_norm_rms_epsilon") > 0);
  assert.equal(findMetadata(header, "tokenizer.ggml.model")?.value, "llama");

  assert.equal(header.tensors.length, 3 + 9 * forged.nLayer);
  const names = new Set(header.tensors.map((tensor) => tensor.name));
  for (const name of ["token_embd.weight", "output_norm.weight", "output.weight"]) assert.ok(names.has(name), name);
  for (let layer = 0; layer < forged.nLayer; layer++) {
    for (const part of ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]) {
      assert.ok(names.has(`blk.${layer}.${part}.weight`), `blk.${layer}.${part}.weight`);
    }
  }
  const byName = new Map(header.tensors.map((tensor) => [tensor.name, tensor]));
  assert.deepEqual(byName.get("token_embd.weight")?.dims, [forged.nEmbd, forged.vocabSize]);
  assert.deepEqual(byName.get("blk.0.ffn_down.weight")?.dims, [forged.nFf, forged.nEmbd]);
  assert.deepEqual(byName.get("blk.0.ffn_up.weight")?.dims, [forged.nEmbd, forged.nFf]);
  assert.equal(byName.get("blk.0.attn_norm.weight")?.type, GgmlType.F32);
  assert.equal(byName.get("blk.0.attn_q.weight")?.type, forged.weightType === "f16" ? GgmlType.F16 : GgmlType.Q8_0);

  assert.equal(header.dataOffset % 32, 0);
  let end = 0;
  for (const tensor of header.tensors) {
    assert.equal(tensor.offset % 32, 0, `${tensor.name} offset is aligned`);
    assert.ok(tensor.offset >= end, `${tensor.name} does not overlap the previous tensor`);
    end = tensor.offset + tensorByteSize(tensor.type, tensor.dims);
  }
  assert.equal(header.dataOffset + end, fileSize);
}

function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Decodes the first `count` values of an F16 or Q8_0 tensor. */
async function readWeights(path: string, header: GgufHeader, name: string, count: number): Promise<number[]> {
  const tensor = header.tensors.find((candidate) => candidate.name === name);
  assert.ok(tensor, name);
  const byteCount = tensor.type === GgmlType.F16 ? count * 2 : (count / 32) * 34;
  const bytes = Buffer.alloc(byteCount);
  const file = await open(path, "r");
  try {
    await file.read(bytes, 0, byteCount, header.dataOffset + tensor.offset);
  } finally {
    await file.close();
  }
  const values: number[] = [];
  if (tensor.type === GgmlType.F16) {
    for (let index = 0; index < count; index++) values.push(float16ToNumber(bytes.readUInt16LE(index * 2)));
  } else {
    for (let block = 0; block < count / 32; block++) {
      const scale = float16ToNumber(bytes.readUInt16LE(block * 34));
      for (let index = 0; index < 32; index++) values.push(scale * bytes.readInt8(block * 34 + 2 + index));
    }
  }
  return values;
}

function standardDeviation(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

describe("forgeModel", function () {
  this.timeout(60_000);
  let directory: string;
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "forge-model-"));
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const requests: Array<{ sizeBytes: number; weightType: "f16" | "q8_0" }> = [
    { sizeBytes: 5_000_000, weightType: "f16" },
    { sizeBytes: 5_000_000, weightType: "q8_0" },
    { sizeBytes: 50_000_000, weightType: "f16" },
    { sizeBytes: 50_000_000, weightType: "q8_0" },
  ];
  for (const { sizeBytes, weightType } of requests) {
    it(`writes a ${sizeBytes / 1e6}MB ${weightType} llama GGUF within 5% of the request that reads back`, async () => {
      const outPath = join(directory, `model-${sizeBytes}-${weightType}.gguf`);
      const forged = await forgeModel({ sizeBytes, outPath, weightType, tokenizerFrom: BYTE_TOKENIZER });
      const fileSize = (await stat(outPath)).size;
      assert.equal(forged.bytes, fileSize);
      assert.equal(forged.path, outPath);
      assert.ok(Math.abs(fileSize - sizeBytes) <= sizeBytes * 0.05, `${fileSize} bytes is within 5% of ${sizeBytes}`);
      assertWellFormedLlama(await readGgufHeader(outPath), forged, fileSize);
      await rm(outPath);
    });
  }

  it("scales width and depth up with the requested size", async () => {
    const small = await forgeModel({ sizeBytes: 5_000_000, outPath: join(directory, "small.gguf"), weightType: "q8_0" });
    const large = await forgeModel({ sizeBytes: 60_000_000, outPath: join(directory, "large.gguf"), weightType: "q8_0" });
    assert.ok(large.nEmbd > small.nEmbd, `${large.nEmbd} > ${small.nEmbd}`);
    assert.ok(large.nEmbd * large.nLayer > small.nEmbd * small.nLayer);
  });

  for (const weightType of ["f16", "q8_0"] as const) {
    it(`fills ${weightType} weights with small zero-mean noise (std about 0.02)`, async () => {
      const outPath = join(directory, `weights-${weightType}.gguf`);
      await forgeModel({ sizeBytes: 2_000_000, outPath, weightType, tokenizerFrom: BYTE_TOKENIZER });
      const header = await readGgufHeader(outPath);
      const { mean, std } = standardDeviation(await readWeights(outPath, header, "blk.0.attn_q.weight", 4096));
      assert.ok(Math.abs(mean) < 0.002, `mean ${mean}`);
      assert.ok(std > 0.017 && std < 0.023, `std ${std}`);
    });
  }

  it("is reproducible for a seed and differs between seeds", async () => {
    const forge = (name: string, seed: number) =>
      forgeModel({ sizeBytes: 1_000_000, outPath: join(directory, name), weightType: "q8_0", seed, tokenizerFrom: BYTE_TOKENIZER });
    await forge("seed-1a.gguf", 1);
    await forge("seed-1b.gguf", 1);
    await forge("seed-2.gguf", 2);
    const [first, again, other] = await Promise.all(
      ["seed-1a.gguf", "seed-1b.gguf", "seed-2.gguf"].map((name) => sha256(join(directory, name))),
    );
    assert.equal(first, again);
    assert.notEqual(first, other);
  });

  it("writes the requested context length", async () => {
    const outPath = join(directory, "context.gguf");
    await forgeModel({ sizeBytes: 1_000_000, outPath, weightType: "f16", contextLength: 512, tokenizerFrom: BYTE_TOKENIZER });
    assert.equal(metadataNumber(await readGgufHeader(outPath), "llama.context_length"), 512);
  });

  it("uses the built-in byte tokenizer on request", async () => {
    const outPath = join(directory, "byte-tokenizer.gguf");
    const forged = await forgeModel({ sizeBytes: 1_000_000, outPath, weightType: "q8_0", tokenizerFrom: BYTE_TOKENIZER });
    assert.equal(forged.tokenizerSource, BYTE_TOKENIZER);
    const header = await readGgufHeader(outPath);
    const tokens = findMetadata(header, "tokenizer.ggml.tokens")?.value;
    assert.ok(typeof tokens === "object");
    assert.equal(tokens.items.length, forged.vocabSize);
    assert.deepEqual(tokens.items.slice(0, 3), ["<unk>", "<s>", "</s>"]);
    for (let byte = 0; byte < 256; byte++) {
      assert.equal(tokens.items[3 + byte], `<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    }
    assert.equal(new Set(tokens.items).size, tokens.items.length, "pieces are unique");
    assert.equal(metadataNumber(header, "tokenizer.ggml.bos_token_id"), 1);
    assert.equal(metadataNumber(header, "tokenizer.ggml.eos_token_id"), 2);
    assert.equal(metadataNumber(header, "tokenizer.ggml.unknown_token_id"), 0);
  });

  it("copies the tokenizer metadata of stories260K by default", async function () {
    const storiesPath = defaultTokenizerPath();
    if (!existsSync(storiesPath)) this.skip();
    const outPath = join(directory, "stories-tokenizer.gguf");
    const forged = await forgeModel({ sizeBytes: 1_000_000, outPath, weightType: "f16" });
    assert.equal(forged.tokenizerSource, storiesPath);
    const tokenizerEntries = (header: GgufHeader) => header.metadata.filter((entry) => entry.key.startsWith("tokenizer."));
    const expected = tokenizerEntries(await readGgufHeader(storiesPath));
    assert.ok(expected.length > 0);
    assert.deepEqual(tokenizerEntries(await readGgufHeader(outPath)), expected);
    assert.equal(forged.vocabSize, 512);
  });

  it("rejects a tokenizerFrom path that does not exist", async () => {
    await assert.rejects(
      forgeModel({ sizeBytes: 1_000_000, outPath: join(directory, "never.gguf"), weightType: "f16", tokenizerFrom: join(directory, "missing.gguf") }),
      /missing\.gguf" does not exist/,
    );
  });

  it("rejects a size too small for any llama model", async () => {
    await assert.rejects(
      forgeModel({ sizeBytes: 10_000, outPath: join(directory, "tiny.gguf"), weightType: "q8_0", tokenizerFrom: BYTE_TOKENIZER }),
      /cannot make a q8_0 model of 10000 bytes.*smallest possible is \d+ bytes/,
    );
    assert.equal(existsSync(join(directory, "tiny.gguf")), false);
  });
});
