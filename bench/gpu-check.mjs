#!/usr/bin/env node
// GPU path check for node-llama-cpp: loads a tiny GGUF model with several backends
// (CUDA via gpu:"auto" / gpu:"cuda", CPU via gpu:false) and reports load time,
// context creation time, TTFT, decode tokens/s, offloaded layers and VRAM state.
//
// Each configuration runs in its own child process, so a native crash in one backend
// does not take the others down, and each backend starts cold.
//
//   node bench/gpu-check.mjs [--model PATH] [--tokens 256] [--configs auto:1,cuda:1,cpu:1,cpu:8]
//
// Env: GPU_CHECK_NLC=<dir of the node-llama-cpp package> to import it from elsewhere.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..");

function arg(name, def) {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

function defaultModel() {
    const candidates = [
        path.join(repoRoot, "models", "stories260K.gguf"),
        path.join(repoRoot, ".device", "stories260K.gguf"),
    ];
    return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

const MiB = 1024 * 1024;
const fmtMiB = (b) => (b == null ? "-" : (b / MiB).toFixed(1));
const ms = (t0, t1) => Number((t1 - t0).toFixed(1));

async function importNlc() {
    const dir = process.env.GPU_CHECK_NLC;
    if (dir) return import(pathToFileURL(path.join(dir, "dist", "index.js")).href);
    return import("node-llama-cpp");
}

// When a GPU binary is rejected, getLlama only says NoBinaryFoundError; retry through the internal
// entry point with the binary test's own logs piped to stderr, to show why.
async function explainBinaryFailure(options) {
    try {
        const dir = process.env.GPU_CHECK_NLC
            ?? path.dirname(path.dirname(fileURLToPath(import.meta.resolve("node-llama-cpp"))));
        const { getLlamaForOptions } = await import(pathToFileURL(path.join(dir, "dist", "bindings", "getLlama.js")).href);
        console.error("--- binary test logs (diagnostic retry) ---");
        await getLlamaForOptions({ ...options, progressLogs: "stderr" }, { pipeBinaryTestErrorLogs: true });
    } catch (e) {
        console.error(`--- diagnostic retry: ${e?.message ?? e}`);
    }
}

// ---------- child: one configuration ----------
async function runChild(cfg) {
    const out = { name: cfg.name, gpuRequested: cfg.gpu, threads: cfg.threads };
    const tImport0 = performance.now();
    const { getLlama, LlamaLogLevel } = await importNlc();
    out.importMs = ms(tImport0, performance.now());

    const llamaOptions = {
        gpu: cfg.gpu,
        build: "never",
        usePrebuiltBinaries: true,
        skipDownload: true,
        progressLogs: false,
        logLevel: LlamaLogLevel.warn
    };
    const t0 = performance.now();
    let llama;
    try {
        llama = await getLlama(llamaOptions);
    } catch (err) {
        if (cfg.gpu !== false) await explainBinaryFailure(llamaOptions);
        throw err;
    }
    out.getLlamaMs = ms(t0, performance.now());
    out.backend = llama.gpu;
    out.buildType = llama.buildType;
    out.llamaCpp = llama.llamaCppRelease?.release;
    out.supportsGpuOffloading = llama.supportsGpuOffloading;
    out.cpuMathCores = llama.cpuMathCores;
    try {
        out.gpuDevices = await llama.getGpuDeviceNames();
    } catch (e) {
        out.gpuDevices = `error: ${e.message}`;
    }
    const vram0 = await llama.getVramState();
    out.vramBefore = vram0;

    const t1 = performance.now();
    const model = await llama.loadModel({ modelPath: cfg.model, gpuLayers: cfg.gpu === false ? 0 : "max" });
    out.loadModelMs = ms(t1, performance.now());
    out.gpuLayers = model.gpuLayers;
    out.modelLayers = model.fileInsights?.totalLayers;
    out.modelSize = model.size;
    out.vramAfterLoad = await llama.getVramState();

    const t2 = performance.now();
    const context = await model.createContext({ contextSize: 1024, batchSize: 512, threads: cfg.threads });
    out.createContextMs = ms(t2, performance.now());
    out.contextSize = context.contextSize;
    out.contextThreads = context.currentThreads ?? null;
    out.vramAfterContext = await llama.getVramState();

    const seq = context.getSequence();
    const prompt = model.tokenize("Once upon a time");
    out.promptTokens = prompt.length;

    async function generate(n) {
        const tStart = performance.now();
        let first = null, last = null, count = 0;
        const tokens = [];
        for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
            const now = performance.now();
            if (first == null) first = now;
            last = now;
            tokens.push(token);
            if (++count >= n) break;
        }
        await seq.clearHistory();
        return {
            ttftMs: ms(tStart, first),
            totalMs: ms(tStart, last),
            count,
            decodeTokPerS: count > 1 ? Number(((count - 1) / ((last - first) / 1000)).toFixed(1)) : null,
            tokens
        };
    }

    const cold = await generate(16); // first evaluation: kernel loading, allocator warm-up
    out.ttftColdMs = cold.ttftMs;
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await generate(cfg.tokens));
    runs.sort((a, b) => a.decodeTokPerS - b.decodeTokPerS);
    const med = runs[1];
    out.tokens = med.count;
    out.ttftMs = med.ttftMs;
    out.genTotalMs = med.totalMs;
    out.tokPerS = med.decodeTokPerS;
    out.tokPerSRuns = runs.map((r) => r.decodeTokPerS);
    out.endToEndTokPerS = Number((med.count / (med.totalMs / 1000)).toFixed(1));
    out.sample = model.detokenize(med.tokens.slice(0, 40)).replace(/\s+/g, " ").slice(0, 120);
    out.vramEnd = await llama.getVramState();

    await context.dispose();
    await model.dispose();
    await llama.dispose();
    return out;
}

// ---------- parent ----------
function runConfigInChild(cfg, timeoutMs) {
    return new Promise((resolve) => {
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", JSON.stringify(cfg)], {
            stdio: ["ignore", "pipe", "pipe"],
            env: process.env
        });
        let stdout = "", stderr = "";
        child.stdout.on("data", (d) => { stdout += d; });
        child.stderr.on("data", (d) => { stderr += d; process.stderr.write(`[${cfg.name}] ${d}`); });
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        const t0 = performance.now();
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
            const res = line ? JSON.parse(line.slice(7)) : { name: cfg.name, error: `exit ${code} ${signal ?? ""}`.trim(), stderrTail: stderr.slice(-2000) };
            res.childWallMs = ms(t0, performance.now());
            resolve(res);
        });
    });
}

async function main() {
    const childIdx = process.argv.indexOf("--child");
    if (childIdx >= 0) {
        const cfg = JSON.parse(process.argv[childIdx + 1]);
        try {
            const res = await runChild(cfg);
            process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
        } catch (e) {
            process.stdout.write(`RESULT ${JSON.stringify({ name: cfg.name, error: String(e?.stack ?? e) })}\n`);
        }
        process.exit(0);
    }

    const model = path.resolve(arg("model", defaultModel()));
    const tokens = Number(arg("tokens", "256"));
    const timeoutMs = Number(arg("timeout-ms", "120000"));
    const specs = arg("configs", "auto:1,cuda:1,auto:8,cpu:1,cpu:8").split(",");
    const configs = specs.map((s) => {
        const [g, t] = s.split(":");
        const gpu = g === "cpu" ? false : g;
        return { name: `${g}/t${t}`, gpu, threads: Number(t), model, tokens };
    });

    console.log(`gpu-check: node ${process.version}, model ${model}, ${tokens} tokens, configs ${specs.join(" ")}`);
    const results = [];
    for (const cfg of configs) {
        const res = await runConfigInChild(cfg, timeoutMs);
        results.push(res);
        console.log(`RESULT ${JSON.stringify(res)}`);
    }

    console.log("\n=== gpu-check summary ===");
    const header = ["config", "backend", "gpuLayers", "getLlama ms", "load ms", "ctx ms", "TTFT cold ms", "TTFT ms", "tok/s (decode, median of 3)", "VRAM used MiB (before/after load/after ctx)", "VRAM total MiB"];
    console.log(header.join(" | "));
    for (const r of results) {
        if (r.error) {
            console.log(`${r.name} | ERROR: ${r.error.split("\n")[0]}`);
            continue;
        }
        console.log([
            r.name, r.backend, `${r.gpuLayers}/${r.modelLayers ?? "?"}`, r.getLlamaMs, r.loadModelMs, r.createContextMs,
            r.ttftColdMs, r.ttftMs, `${r.tokPerS} (${r.tokPerSRuns.join(", ")})`,
            `${fmtMiB(r.vramBefore?.used)}/${fmtMiB(r.vramAfterLoad?.used)}/${fmtMiB(r.vramAfterContext?.used)}`,
            fmtMiB(r.vramBefore?.total)
        ].join(" | "));
    }
    const gpuDev = results.find((r) => Array.isArray(r.gpuDevices) && r.gpuDevices.length)?.gpuDevices;
    if (gpuDev) console.log(`GPU devices: ${gpuDev.join(", ")}`);
    const s = results.find((r) => r.sample)?.sample;
    if (s) console.log(`sample: ${s}`);
    process.exit(results.some((r) => r.error) ? 1 : 0);
}

main().catch((e) => {
    console.error(e);
    process.exit(2);
});
