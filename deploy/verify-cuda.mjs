#!/usr/bin/env node
// Checks a CUDA build of node-llama-cpp made by deploy/build-cuda.sh (which runs this).
//
//   node deploy/verify-cuda.mjs dir            prints the folder of the CUDA build that node-llama-cpp
//                                              picks with this environment's NODE_LLAMA_CPP_CMAKE_OPTION_*
//                                              variables (no GPU needed); exit 1 and why when none matches
//   node deploy/verify-cuda.mjs load [MODEL]   getLlama({gpu: "cuda"}) on the GPU, and with MODEL, loads it
//                                              with every layer offloaded and generates 16 tokens
//
// node-llama-cpp looks for a local build in a folder named after its CMake options, which it
// reads from NODE_LLAMA_CPP_CMAKE_OPTION_* when getLlama runs: a runner without the options
// the build was made with does not find it and falls back to the CPU.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const OPTION_PREFIX = "NODE_LLAMA_CPP_CMAKE_OPTION_";
const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const localBuilds = path.join(projectRoot, "node_modules", "node-llama-cpp", "llama", "localBuilds");

const say = (line) => console.error(`verify-cuda: ${line}`);

function environmentOptions() {
  const options = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith(OPTION_PREFIX) && name.length > OPTION_PREFIX.length) options[name.slice(OPTION_PREFIX.length)] = value ?? "";
  }
  return options;
}

const describe = (options) => Object.entries(options).sort().map(([key, value]) => `${key}=${value}`).join(" ") || "(none)";

function cudaBuilds() {
  if (!existsSync(localBuilds)) return [];
  return readdirSync(localBuilds)
    .map((folder) => path.join(localBuilds, folder, "Release"))
    .filter((release) => existsSync(path.join(release, "llama-addon.node")) && existsSync(path.join(release, "_nlcBuildMetadata.json")) && existsSync(path.join(release, "..", "buildDone.status")))
    .map((release) => ({ release, options: JSON.parse(readFileSync(path.join(release, "_nlcBuildMetadata.json"), "utf8")).buildOptions }))
    .filter((build) => build.options.gpu === "cuda");
}

function pickedBuild() {
  const wanted = describe(environmentOptions());
  const builds = cudaBuilds();
  const match = builds.find((build) => describe(build.options.customCmakeOptions ?? {}) === wanted);
  if (match) return match.release;
  say(builds.length === 0
    ? `no CUDA build in ${localBuilds}: run deploy/build-cuda.sh ARCH`
    : `no CUDA build was made with this environment's CMake options (${wanted}); builds here: ` +
      builds.map((build) => `${path.basename(path.dirname(build.release))} with ${describe(build.options.customCmakeOptions ?? {})}`).join("; ") +
      `. Set the same ${OPTION_PREFIX}* variables where modelswap runs (the images set them).`);
  return undefined;
}

async function load(modelPath) {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const started = performance.now();
  // build: never, no prebuilt binaries: this checks the local CUDA build, nothing else.
  const llama = await getLlama({ gpu: "cuda", build: "never", usePrebuiltBinaries: false, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.warn });
  const report = {
    backend: llama.gpu,
    buildType: llama.buildType,
    llamaCpp: llama.llamaCppRelease?.release,
    getLlamaMs: Math.round(performance.now() - started),
    devices: await llama.getGpuDeviceNames(),
    vram: await llama.getVramState(),
  };
  let ok = llama.gpu === "cuda" && report.buildType === "localBuild";
  if (modelPath) {
    const loadStarted = performance.now();
    const model = await llama.loadModel({ modelPath, gpuLayers: "max" });
    report.model = path.basename(modelPath);
    report.loadMs = Math.round(performance.now() - loadStarted);
    report.gpuLayers = `${model.gpuLayers}/${model.fileInsights.totalLayers}`;
    report.vramAfterLoad = await llama.getVramState();
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    const sequence = context.getSequence();
    const tokens = [];
    const generateStarted = performance.now();
    for await (const token of sequence.evaluate(model.tokenize("Once upon a time"), { temperature: 0 })) {
      tokens.push(token);
      if (tokens.length >= 16) break;
    }
    report.generated = `${tokens.length} tokens in ${Math.round(performance.now() - generateStarted)} ms: ${JSON.stringify(model.detokenize(tokens))}`;
    await context.dispose();
    await model.dispose();
    report.vramAfterUnload = await llama.getVramState();
    ok &&= model.gpuLayers > 0 && tokens.length > 0;
  }
  await llama.dispose();
  console.log(`verify-cuda: ${JSON.stringify(report)}`);
  say(ok ? "the CUDA build loads on the GPU" : "the CUDA build did NOT run on the GPU (see the report above)");
  return ok;
}

const [command, argument] = process.argv.slice(2);
if (command === "dir") {
  const release = pickedBuild();
  if (release === undefined) process.exit(1);
  console.log(release);
} else if (command === "load") {
  if (argument !== undefined && !existsSync(argument)) {
    say(`no model at ${argument}`);
    process.exit(1);
  }
  const ok = await load(argument).catch((error) => {
    say(`getLlama({gpu: "cuda"}) failed: ${error?.message ?? error}`);
    // Either no build matches this environment (pickedBuild says why), or the GPU is not usable here.
    if (pickedBuild() !== undefined) say("the CUDA build is here, so the GPU or its driver is not usable in this process: check nvidia-smi, and run containers with the NVIDIA runtime (runtime: nvidia)");
    return false;
  });
  process.exit(ok ? 0 : 1);
} else {
  say("usage: node deploy/verify-cuda.mjs dir | load [MODEL]");
  process.exit(2);
}
