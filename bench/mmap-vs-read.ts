/**
 * Mapped vs read weights on llama.cpp's CPU backend, per tensor type: which types does llama.cpp
 * repack into its own buffers on this CPU (then a mapping holds the weights twice: the file pages
 * and the repacked copy)?
 *
 *   npx tsc -p . && node dist/bench/mmap-vs-read.js [--size-mb 100] [--rounds 3] [--types f16,q8_0,f32,q4_0] [--dir DIR]
 *
 * For each type a random-weight model of `size-mb` is written under --dir (default
 * ~/.cache/modelswap/mmap-bench; forge writes F16 and Q8_0, F32 is the F16 model of half the size
 * widened, Q4_0 is an F16 model quantized by llama.cpp's llama-quantize, built in bench:peer's
 * llama.cpp build folder). Each measurement runs in a fresh Node process (this script with --child) that loads
 * the model with node-llama-cpp (`getLlama({gpu:false})`, threads 1, context 2048, one sequence)
 * with useMmap true or false, page cache warm, and reports: load time, RSS (and its file-backed
 * and anonymous parts) after load and after context creation, and the buffers llama.cpp logged
 * ("CPU_REPACK" = weights repacked for this CPU's kernels). Modes alternate across rounds.
 * Not part of the tests; it prints figures and asserts nothing.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { forgeModel } from "../forge/forge-model.js";
import { GgmlType, LlamaFileType, findMetadata, tensorByteSize, type GgufMetadataEntry } from "../forge/gguf-format.js";
import { readGgufHeader } from "../forge/gguf-reader.js";
import { writeGguf, type TensorSource } from "../forge/gguf-writer.js";
import { readCpuFeatures, readWeightTensors } from "../services/runner/weight-tensors.js";
import { repackedBytes, shouldMapWeights } from "../services/runner/weights-mapping.js";
import { llamaServerCacheDir } from "./lib/llama-server-build.js";
import { fmt, loadAverage, median, positiveInt } from "./lib/report.js";

const MB = 1e6;
const { values: flags } = parseArgs({
  options: {
    "size-mb": { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
    types: { type: "string", default: "f16,q8_0,f32,q4_0" },
    dir: { type: "string", default: path.join(os.homedir(), ".cache/modelswap/mmap-bench") },
    child: { type: "string" },
    mmap: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});

// ---- the child: one load in a fresh process ----------------------------------------------------

interface Memory {
  rss: number;
  rssAnon: number;
  rssFile: number;
}

function memory(): Memory {
  const status = readStatus();
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), rssAnon: kb("RssAnon"), rssFile: kb("RssFile") };
}

function readStatus(): string {
  const fd = openSync("/proc/self/status", "r");
  try {
    const buffer = Buffer.alloc(16384);
    return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

interface ChildResult {
  loadMs: number;
  contextMs: number;
  before: Memory;
  afterLoad: Memory;
  afterContext: Memory;
  buffers: string[];
}

async function child(modelPath: string, useMmap: boolean): Promise<void> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const buffers: string[] = [];
  const llama = await getLlama({
    gpu: false,
    logLevel: LlamaLogLevel.info,
    logger: (_level, message) => {
      if (/buffer size|REPACK|repack/i.test(message)) buffers.push(message.trim());
    },
  });
  const before = memory();
  const started = performance.now();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap });
  const loaded = performance.now();
  const afterLoad = memory();
  const context = await model.createContext({ contextSize: 2048, sequences: 1, threads: 1 });
  const contextMs = performance.now() - loaded;
  const afterContext = memory();
  const result: ChildResult = { loadMs: loaded - started, contextMs, before, afterLoad, afterContext, buffers };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await context.dispose();
  await model.dispose();
}

// ---- the parent ---------------------------------------------------------------------------------

type WeightType = "f16" | "q8_0" | "f32" | "q4_0";

/**
 * llama.cpp's `llama-quantize`, built next to bench:peer's llama-server (same cmake folder) when
 * missing. Needed for Q4_0, the type llama.cpp repacks on x86 AVX2.
 */
async function llamaQuantize(): Promise<string> {
  const build = path.join(llamaServerCacheDir(), "build");
  const binary = path.join(build, "bin/llama-quantize");
  if (existsSync(binary)) return binary;
  if (!existsSync(path.join(build, "CMakeCache.txt"))) throw new Error(`q4_0 needs llama.cpp's build folder ${build}: run npm run bench:peer first (it builds llama-server there)`);
  console.log(`building llama-quantize in ${build}…`);
  const result = spawnSync("cmake", ["--build", build, "--target", "llama-quantize", "-j2"], { encoding: "utf8", timeout: 1_200_000 });
  if (result.status !== 0 || !existsSync(binary)) throw new Error(`building llama-quantize failed:\n${(result.stdout + result.stderr).slice(-2000)}`);
  return binary;
}

function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** The F16 model `source` with every F16 tensor widened to F32 (twice the bytes). */
async function widenToF32(source: string, outPath: string): Promise<void> {
  const header = await readGgufHeader(source);
  const metadata: GgufMetadataEntry[] = header.metadata.map((entry) =>
    entry.key === "general.file_type" ? { ...entry, value: LlamaFileType.ALL_F32 } : entry,
  );
  if (!findMetadata(header, "general.file_type")) throw new Error(`${source} has no general.file_type`);
  const fd = openSync(source, "r");
  try {
    const tensors: TensorSource[] = header.tensors.map((info) => {
      const dims = info.dims;
      const type = info.type === GgmlType.F16 ? GgmlType.F32 : info.type;
      const offset = header.dataOffset + info.offset;
      const sourceBytes = tensorByteSize(info.type, dims);
      return {
        name: info.name,
        dims,
        type,
        *chunks() {
          const step = 4 * 1024 * 1024;
          const input = Buffer.alloc(step);
          for (let done = 0; done < sourceBytes; done += step) {
            const length = Math.min(step, sourceBytes - done);
            readSync(fd, input, 0, length, offset + done);
            if (info.type !== GgmlType.F16) {
              yield new Uint8Array(input.subarray(0, length));
              continue;
            }
            const output = new Float32Array(length / 2);
            for (let i = 0; i < output.length; i++) output[i] = f16ToF32(input.readUInt16LE(2 * i));
            yield new Uint8Array(output.buffer);
          }
        },
      };
    });
    await writeGguf(outPath, metadata, tensors);
  } finally {
    closeSync(fd);
  }
}

async function modelFile(dir: string, type: WeightType, sizeMb: number): Promise<string> {
  const file = path.join(dir, `${type}-${sizeMb}MB.gguf`);
  if (existsSync(file)) return file;
  const partial = `${file}.partial`;
  if (type === "f32") {
    const half = await modelFile(dir, "f16", sizeMb / 2);
    await widenToF32(half, partial);
  } else if (type === "q4_0") {
    // Q4_0 is 4.5 bits a weight: quantize an F16 model 3.5x the size, every tensor Q4_0 (--pure)
    const source = await modelFile(dir, "f16", Math.round(sizeMb * 3.5));
    const result = spawnSync(await llamaQuantize(), ["--pure", source, partial, "Q4_0", "1"], { encoding: "utf8", timeout: 600_000 });
    if (result.status !== 0) throw new Error(`llama-quantize failed:\n${(result.stdout + result.stderr).slice(-2000)}`);
  } else {
    await forgeModel({ sizeBytes: sizeMb * MB, outPath: partial, weightType: type, seed: 7 });
  }
  renameSync(partial, file);
  return file;
}

/** Tensor types with their share of the bytes, and what shouldMapWeights decides for this CPU. */
async function describe(file: string): Promise<string> {
  const tensors = await readWeightTensors(file);
  const cpu = await readCpuFeatures();
  const bytes = new Map<string, { count: number; bytes: number }>();
  for (const tensor of tensors) {
    const entry = bytes.get(tensor.type) ?? { count: 0, bytes: 0 };
    bytes.set(tensor.type, { count: entry.count + 1, bytes: entry.bytes + tensor.bytes });
  }
  const total = tensors.reduce((sum, tensor) => sum + tensor.bytes, 0);
  const types = [...bytes].map(([type, entry]) => `${entry.count} ${type} (${fmt((100 * entry.bytes) / total, 0)}% of bytes)`).join(", ");
  const repacked = repackedBytes(tensors, cpu);
  const decision = shouldMapWeights(tensors, { kind: "cpu", features: cpu }) ? "map" : "read";
  return `tensors ${types}; predicted repacked on this CPU ${fmt(repacked / MB, 1)} MB -> shouldMapWeights: ${decision}`;
}

async function warm(file: string): Promise<void> {
  const handle = await open(file, "r");
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  try {
    while ((await handle.read(buffer, 0, buffer.length)).bytesRead > 0);
  } finally {
    await handle.close();
  }
}

function runChild(file: string, useMmap: boolean): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const script = fileURLToPath(import.meta.url);
    const proc = spawn(process.execPath, [script, "--child", file, "--mmap", String(useMmap)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    proc.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
    proc.on("close", (code) => {
      clearTimeout(timer);
      const line = out.split("\n").find((entry) => entry.startsWith("RESULT "));
      if (code !== 0 || !line) return reject(new Error(`child for ${file} (mmap ${useMmap}) failed (exit ${code}):\n${out.slice(-2000)}`));
      resolve(JSON.parse(line.slice(7)) as ChildResult);
    });
  });
}

async function main(): Promise<void> {
  if (flags.help) {
    process.stdout.write("node dist/bench/mmap-vs-read.js [--size-mb 100] [--rounds 3] [--types f16,q8_0,f32,q4_0] [--dir DIR]\n");
    return;
  }
  if (flags.child) return child(flags.child, flags.mmap === "true");
  const sizeMb = positiveInt(flags["size-mb"]!, "--size-mb");
  const rounds = positiveInt(flags.rounds!, "--rounds");
  const types = flags.types!.split(",").filter(Boolean) as WeightType[];
  const dir = path.resolve(flags.dir!);
  mkdirSync(dir, { recursive: true });
  console.log(`mmap-vs-read: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} cores; node-llama-cpp getLlama({gpu:false}), threads 1, ctx 2048; load average ${loadAverage()}`);
  const mbOf = (bytes: number) => fmt(bytes / MB, 0);
  const rows: string[] = [];
  for (const type of types) {
    const file = await modelFile(dir, type, sizeMb);
    console.log(`\n${type}: ${file} — ${await describe(file)}`);
    const results: Record<"mmap" | "read", ChildResult[]> = { mmap: [], read: [] };
    for (let round = 0; round < rounds; round++) {
      for (const mode of round % 2 === 0 ? (["mmap", "read"] as const) : (["read", "mmap"] as const)) {
        await warm(file);
        results[mode].push(await runChild(file, mode === "mmap"));
      }
    }
    for (const mode of ["mmap", "read"] as const) {
      const runs = results[mode];
      const spread = (values: number[], digits = 0) => `${fmt(median(values), digits)} (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`;
      const delta = (pick: (run: ChildResult) => Memory, part: keyof Memory) => runs.map((run) => pick(run)[part] - run.before[part]);
      const line =
        `| ${type} | ${mode} | ${spread(runs.map((run) => run.loadMs))} | ${spread(runs.map((run) => run.contextMs))} | ` +
        `${mbOf(median(delta((run) => run.afterLoad, "rss")))} (file ${mbOf(median(delta((run) => run.afterLoad, "rssFile")))}, anon ${mbOf(median(delta((run) => run.afterLoad, "rssAnon")))}) | ` +
        `${mbOf(median(delta((run) => run.afterContext, "rss")))} (file ${mbOf(median(delta((run) => run.afterContext, "rssFile")))}, anon ${mbOf(median(delta((run) => run.afterContext, "rssAnon")))}) |`;
      rows.push(line);
      console.log(`  ${mode}: llama.cpp buffers: ${[...new Set(runs[0]!.buffers.filter((entry) => /model buffer|REPACK/i.test(entry)))].join(" | ") || "(none logged)"}`);
    }
  }
  console.log(`\nRSS figures are growth over the process's RSS before the load (MB; file = file-backed pages, anon = llama.cpp's own buffers); median (min–max) over ${rounds} runs, page cache warm.\n`);
  console.log("| type | weights | load ms | context ms | RSS after load, MB | RSS after context, MB |");
  console.log("|---|---|---|---|---|---|");
  for (const row of rows) console.log(row);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
