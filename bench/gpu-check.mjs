#!/usr/bin/env node
// GPU check of the runner's path on node-llama-cpp: in ONE runner-like process, swaps between
// two models (stories260K from models/ and a forged ~100 MB F16 model) twice, generating on
// each, and reports load time, TTFT, tokens/s and memory before/after every load and unload:
// the GPU's (nvidia-smi and getVramState), the process's (RSS, RssAnon) and what measureLoad
// (services/runner/load-measurement.ts) charges for the load. Then the research plan's
// questions 8 and 9 on the GPU: both models resident in one process (shared runner) against
// each in its own process (isolation), by nvidia-smi's per-process memory.
//
//   node bench/gpu-check.mjs [--gpu cuda|cpu] [--forge-size 100MB] [--tokens 64] [--deadline-s 420] [--out DIR]
//
// bench/gpu-check.sh builds node-llama-cpp for the GPU first (deploy/build-cuda.sh) and runs
// this; with --gpu cpu (no GPU) the same sequence runs on the CPU as a dry run. Needs the
// compiled project (npx tsc -p .). Figures go to DIR/gpu-check.json (default: $OUT if set).
import { execFileSync, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const MiB = 1024 * 1024;

function flag(name, fallback) {
    const index = process.argv.indexOf(`--${name}`);
    return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

const project = async (file) => {
    const compiled = path.join(root, "dist", file);
    if (!existsSync(compiled)) throw new Error(`${compiled} is missing: compile the project first (npx tsc -p .)`);
    return import(pathToFileURL(compiled).href);
};

// ---------- readings ----------
function nvidiaSmi(args) {
    try {
        return execFileSync("nvidia-smi", args, { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
        return undefined;
    }
}

/** GPU memory in use (MiB) on the first device, and per process, as nvidia-smi reports it. */
function smiMemory() {
    const used = nvidiaSmi(["--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"]);
    if (used === undefined) return undefined;
    const [usedMiB, totalMiB] = used.split("\n")[0].split(",").map((field) => Number(field.trim()));
    const apps = (nvidiaSmi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]) ?? "")
        .split("\n")
        .filter((line) => line.includes(","))
        .map((line) => line.split(",").map((field) => Number(field.trim())))
        .map(([pid, usedMemoryMiB]) => ({ pid, usedMiB: usedMemoryMiB }));
    return { usedMiB, totalMiB, apps };
}

function machine() {
    const gpu = nvidiaSmi(["--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"]);
    const cudaVersion = /CUDA Version:\s*([\d.]+)/.exec(nvidiaSmi([]) ?? "")?.[1];
    let nvcc;
    try {
        nvcc = /release ([\d.]+)/.exec(execFileSync("nvcc", ["--version"], { encoding: "utf8", timeout: 10_000 }))?.[1];
    } catch {
        nvcc = undefined;
    }
    return {
        host: os.hostname(),
        cpu: `${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}`,
        memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
        kernel: os.release(),
        node: process.version,
        gpu: gpu ?? "none (nvidia-smi found no GPU)",
        driverCudaVersion: cudaVersion ?? null,
        nvcc: nvcc ?? null,
    };
}

// ---------- one runner-like process ----------
async function openLlama(gpu) {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const started = performance.now();
    // gpu: cuda takes the local build of deploy/build-cuda.sh (no prebuilt binary, no build here).
    const llama = await getLlama(gpu === "cuda"
        ? { gpu: "cuda", build: "never", usePrebuiltBinaries: false, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.warn }
        : { gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.error });
    return { llama, getLlamaMs: Math.round(performance.now() - started) };
}

async function snapshot(llama, processMemory) {
    const vram = llama.gpu === false ? { total: 0, used: 0, free: 0, unifiedSize: 0 } : await llama.getVramState();
    return { ...processMemory(), vram, smi: smiMemory() };
}

const mib = (bytes) => Math.round(bytes / MiB);

async function loadModel(llama, modelPath, threads) {
    const started = performance.now();
    const model = await llama.loadModel({ modelPath, gpuLayers: llama.gpu === false ? 0 : "auto" });
    const loadMs = performance.now() - started;
    const context = await model.createContext({ contextSize: 512, sequences: 1, threads });
    const contextMs = performance.now() - started - loadMs;
    return { model, context, loadMs: Math.round(loadMs), contextMs: Math.round(contextMs) };
}

async function generate(model, context, tokens) {
    const sequence = context.getSequence();
    const started = performance.now();
    let first, last, count = 0;
    try {
        for await (const token of sequence.evaluate(model.tokenize("Once upon a time"), { temperature: 0, yieldEogToken: true })) {
            void token;
            last = performance.now();
            first ??= last;
            if (++count >= tokens) break;
        }
    } finally {
        sequence.dispose();
    }
    return {
        tokens: count,
        ttftMs: first === undefined ? null : Math.round(first - started),
        tokensPerSecond: count > 1 ? Number(((count - 1) / ((last - first) / 1000)).toFixed(1)) : null,
    };
}

async function swapRounds({ llama, models, tokens, threads, measureLoad, processMemory, unified, log }) {
    const steps = [];
    for (let round = 1; round <= 2; round++) {
        for (const [name, modelPath] of models) {
            const beforeLoad = await snapshot(llama, processMemory);
            const loaded = await loadModel(llama, modelPath, threads);
            const warm = await generate(loaded.model, loaded.context, 1); // kernels and first-use buffers, as the runner's warm-up
            const afterLoad = await snapshot(llama, processMemory);
            const generated = await generate(loaded.model, loaded.context, tokens);
            const layers = `${loaded.model.gpuLayers}/${loaded.model.fileInsights.totalLayers}`;
            await loaded.context.dispose();
            await loaded.model.dispose();
            const afterUnload = await snapshot(llama, processMemory);
            const reading = (s) => ({ rssBytes: s.rssBytes, anonymousRssBytes: s.anonymousRssBytes, deviceUsedBytes: s.vram.used });
            const charged = measureLoad(reading(beforeLoad), reading(afterLoad), unified);
            const step = {
                round, model: name, layers, loadMs: loaded.loadMs, contextMs: loaded.contextMs, warmUpMs: warm.ttftMs, ...generated,
                measured: { hostMiB: mib(charged.hostBytes), deviceMiB: mib(charged.deviceBytes), chargedMiB: mib(charged.chargedBytes), gpuChargedMiB: mib(charged.gpuChargedBytes) },
                vramUsedMiB: { beforeLoad: mib(beforeLoad.vram.used), afterLoad: mib(afterLoad.vram.used), afterUnload: mib(afterUnload.vram.used) },
                smiUsedMiB: beforeLoad.smi ? { beforeLoad: beforeLoad.smi.usedMiB, afterLoad: afterLoad.smi.usedMiB, afterUnload: afterUnload.smi.usedMiB } : null,
                rssMiB: { beforeLoad: mib(beforeLoad.rssBytes), afterLoad: mib(afterLoad.rssBytes), afterUnload: mib(afterUnload.rssBytes) },
            };
            steps.push(step);
            log(`swap ${round}: ${name} layers ${layers} load ${step.loadMs} ms + context ${step.contextMs} ms, TTFT ${step.ttftMs} ms, ${step.tokensPerSecond} tok/s; ` +
                `VRAM used ${step.vramUsedMiB.beforeLoad} -> ${step.vramUsedMiB.afterLoad} -> ${step.vramUsedMiB.afterUnload} MiB (getVramState)` +
                (step.smiUsedMiB ? `, ${step.smiUsedMiB.beforeLoad} -> ${step.smiUsedMiB.afterLoad} -> ${step.smiUsedMiB.afterUnload} MiB (nvidia-smi)` : "") +
                `; RSS ${step.rssMiB.beforeLoad} -> ${step.rssMiB.afterLoad} -> ${step.rssMiB.afterUnload} MiB; charged ${step.measured.chargedMiB} MiB to budget, ${step.measured.gpuChargedMiB} MiB to gpu_budget`);
        }
    }
    return steps;
}

/** Question 8: both models resident in the one process. */
async function sharedRunner({ llama, models, threads, processMemory, log }) {
    const before = await snapshot(llama, processMemory);
    const loaded = [];
    for (const [, modelPath] of models) loaded.push(await loadModel(llama, modelPath, threads));
    for (const { model, context } of loaded) await generate(model, context, 1);
    const both = await snapshot(llama, processMemory);
    for (const { model, context } of loaded) {
        await context.dispose();
        await model.dispose();
    }
    const result = {
        vramGrowthMiB: mib(both.vram.used - before.vram.used),
        smiGrowthMiB: both.smi && before.smi ? both.smi.usedMiB - before.smi.usedMiB : null,
        rssGrowthMiB: mib(both.rssBytes - before.rssBytes),
        thisProcessSmiMiB: both.smi?.apps.find((app) => app.pid === process.pid)?.usedMiB ?? null,
    };
    log(`shared runner (both models in one process): VRAM +${result.vramGrowthMiB} MiB (getVramState), ${result.smiGrowthMiB ?? "-"} MiB (nvidia-smi), RSS +${result.rssGrowthMiB} MiB`);
    return result;
}

/** Question 9: each model in its own process, held while nvidia-smi reads the device. */
async function isolatedRunners({ gpu, models, threads, deadlineAt, log }) {
    const before = smiMemory();
    const children = models.map(([name, modelPath]) => {
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--hold", modelPath, "--gpu", gpu, "--threads", String(threads)], { stdio: ["pipe", "pipe", "inherit"] });
        const ready = new Promise((resolve, reject) => {
            createInterface({ input: child.stdout }).on("line", (line) => {
                if (line.startsWith("HELD ")) resolve({ name, pid: child.pid, ...JSON.parse(line.slice(5)) });
            });
            child.on("exit", (code) => reject(new Error(`the process holding ${name} exited (${code}) before loading it`)));
        });
        return { child, ready };
    });
    try {
        const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("isolated runners did not load in time")), Math.max(1_000, deadlineAt - Date.now())).unref());
        const held = await Promise.race([Promise.all(children.map(({ ready }) => ready)), timeout]);
        const during = smiMemory();
        const perProcess = held.map((h) => ({ model: h.name, rssMiB: h.rssMiB, vramGrowthMiB: h.vramGrowthMiB, smiProcessMiB: during?.apps.find((app) => app.pid === h.pid)?.usedMiB ?? null }));
        const result = { smiGrowthMiB: during && before ? during.usedMiB - before.usedMiB : null, perProcess };
        log(`isolated runners (one process per model): nvidia-smi +${result.smiGrowthMiB ?? "-"} MiB in all; ` +
            perProcess.map((p) => `${p.model}: ${p.smiProcessMiB ?? "-"} MiB on the GPU (nvidia-smi), RSS ${p.rssMiB} MiB`).join("; "));
        return result;
    } finally {
        for (const { child } of children) child.stdin.end();
        await Promise.all(children.map(({ child }) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on("exit", resolve)))));
    }
}

async function hold(modelPath, gpu, threads) {
    const { processMemory } = await project("services/runner/process-memory.js");
    const { llama } = await openLlama(gpu);
    const before = await snapshot(llama, processMemory);
    const loaded = await loadModel(llama, modelPath, threads);
    await generate(loaded.model, loaded.context, 1);
    const after = await snapshot(llama, processMemory);
    process.stdout.write(`HELD ${JSON.stringify({ rssMiB: mib(after.rssBytes), vramGrowthMiB: mib(after.vram.used - before.vram.used) })}\n`);
    await new Promise((resolve) => process.stdin.on("end", resolve).resume());
    await loaded.context.dispose();
    await loaded.model.dispose();
    await llama.dispose();
}

async function main() {
    const gpu = flag("gpu", "cuda");
    const threads = Number(flag("threads", "1"));
    if (process.argv.includes("--hold")) return hold(flag("hold"), gpu, threads);

    const started = Date.now();
    const deadlineAt = started + Number(flag("deadline-s", "420")) * 1000;
    const outDir = flag("out", process.env.OUT);
    const report = { when: new Date().toISOString(), gpu, machine: machine(), steps: [], errors: [] };
    const lines = [];
    const log = (line) => {
        lines.push(line);
        console.log(`gpu-check: ${line}`);
    };
    const finish = async (code) => {
        report.wallSeconds = Math.round((Date.now() - started) / 1000);
        if (outDir) {
            await mkdir(outDir, { recursive: true });
            await writeFile(path.join(outDir, "gpu-check.json"), `${JSON.stringify(report, null, 2)}\n`);
            await writeFile(path.join(outDir, "gpu-check.txt"), `${lines.join("\n")}\n`);
            console.log(`gpu-check: figures in ${path.join(outDir, "gpu-check.json")}`);
        }
        process.exit(code);
    };
    // Bounded: whatever happens, the figures so far are written and the process ends by the deadline.
    setTimeout(() => {
        report.errors.push(`deadline of ${flag("deadline-s", "420")} s passed`);
        log("deadline passed: stopping with the figures so far");
        void finish(3);
    }, deadlineAt - Date.now()).unref();

    log(`machine: ${JSON.stringify(report.machine)}`);
    const workDir = await mkdtemp(path.join(os.tmpdir(), "modelswap-gpu-check-"));
    process.on("exit", () => rmSync(workDir, { recursive: true, force: true }));
    let code = 0;
    try {
        const { forgeModel } = await project("forge/forge-model.js");
        const { parseSize } = await project("common/parse-size.js");
        const { measureLoad } = await project("services/runner/load-measurement.js");
        const { processMemory } = await project("services/runner/process-memory.js");
        const stories = path.join(root, "models", "stories260K.gguf");
        const forgeStarted = performance.now();
        const forged = await forgeModel({ sizeBytes: parseSize(flag("forge-size", "100MB")), outPath: path.join(workDir, "forged-f16.gguf"), weightType: "f16", seed: 1 });
        log(`forged ${path.basename(forged.path)}: ${mib(forged.bytes)} MiB F16, ${forged.nLayer} layers, in ${Math.round(performance.now() - forgeStarted)} ms`);
        const models = [["stories260K", stories], [`forged-${mib(forged.bytes)}MiB-f16`, forged.path]];

        const { llama, getLlamaMs } = await openLlama(gpu).catch((error) => {
            throw new Error(gpu === "cuda"
                ? `getLlama({gpu: "cuda"}) found no usable CUDA build (${error?.message ?? error}): deploy/build-cuda.sh verify says why`
                : `getLlama({gpu: false}) found no CPU binary (${error?.message ?? error}): npm ci installs it (the --pack bundle carries only what the CUDA build needs)`);
        });
        report.backend = { gpu: llama.gpu, buildType: llama.buildType, llamaCpp: llama.llamaCppRelease?.release, getLlamaMs, devices: llama.gpu === false ? [] : await llama.getGpuDeviceNames() };
        const vram = llama.gpu === false ? undefined : await llama.getVramState();
        const unified = (vram?.unifiedSize ?? 0) > 0;
        report.backend.unifiedMemory = unified;
        log(`backend: ${JSON.stringify(report.backend)}`);
        if (gpu === "cuda" && llama.gpu !== "cuda") throw new Error(`asked for CUDA, got ${llama.gpu}`);

        const tokens = Number(flag("tokens", "64"));
        report.steps = await swapRounds({ llama, models, tokens, threads, measureLoad, processMemory, unified, log });
        report.sharedRunner = await sharedRunner({ llama, models, threads, processMemory, log });
        await llama.dispose();
        report.isolatedRunners = await isolatedRunners({ gpu, models, threads, deadlineAt, log });
    } catch (error) {
        report.errors.push(String(error?.stack ?? error));
        log(`error: ${error?.message ?? error}`);
        code = 1;
    }
    await finish(code);
}

await main();
