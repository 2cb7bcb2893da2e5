import { copyFileSync, existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../../common/config/parse-config.js";
import type { Config } from "../../common/config/config-types.js";
import { callUnary } from "../../common/grpc/call-unary.js";
import { forgeModel } from "../../forge/forge-model.js";
import { GgufValueType, type GgufArrayValue, type GgufMetadataEntry } from "../../forge/gguf-format.js";
import { readGgufHeader } from "../../forge/gguf-reader.js";
import { writeGguf } from "../../forge/gguf-writer.js";
import type { AdminClient, StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { startLocalStack, type LocalStack } from "./local-stack.js";
import { fmt } from "./report.js";

/**
 * The files and modelswap settings bench:peer compares on (and bench/swap-breakdown.ts traces):
 * stories260K, random-weight F16 models of 100 MB and 600 MB, five distinct 100 MB F16 models;
 * threads 1, context 2048, one sequence, greedy.
 */

const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const MB = 1e6;
export const PEER_THREADS = 1;
export const PEER_CONTEXT = 2048;

export const defaultPeerDir = () => process.env.MODELSWAP_PEER_DIR ?? path.join(os.homedir(), ".cache/modelswap/peer-bench");

export interface PeerModel {
  /** The router's id (file name without .gguf) and modelswap's catalog name. */
  name: string;
  label: string;
  path: string;
  fileBytes: number;
}

export interface PeerFiles {
  /** stories260K, 100 MB F16, 600 MB F16 (a folder of their own: the router's --models-dir). */
  swap: PeerModel[];
  swapDir: string;
  /** Five distinct 100 MB F16 models. */
  memory: PeerModel[];
  memoryDir: string;
}

/** llama.cpp's token type of a byte-fallback token (<0x00>..<0xFF>) and of a plain one. */
const TOKEN_TYPE_BYTE = 6;
const TOKEN_TYPE_NORMAL = 1;

/**
 * stories260K's tokenizer with its byte-fallback tokens turned into plain ones, in a GGUF without
 * tensors (forge copies its `tokenizer.*` metadata). Random weights pick tokens at random: a byte
 * token >= 0x80 alone is invalid UTF-8, and llama-server (this release) then ends the stream with
 * HTTP 500 "The model produced output that does not match the expected Content-only format".
 * With plain tokens a byte token prints as its name ("<0xF9>"), so the output is always text.
 */
async function printableTokenizer(dir: string): Promise<string> {
  const file = path.join(dir, "tokenizer-printable-bytes.gguf");
  if (existsSync(file)) return file;
  const header = await readGgufHeader(path.join(PROJECT_ROOT, "models/stories260K.gguf"));
  const metadata: GgufMetadataEntry[] = header.metadata
    .filter((entry) => entry.key.startsWith("tokenizer."))
    .map((entry) => {
      if (entry.key !== "tokenizer.ggml.token_type" || entry.type !== GgufValueType.ARRAY) return entry;
      const types = entry.value as GgufArrayValue;
      return { ...entry, value: { ...types, items: types.items.map((type) => (type === TOKEN_TYPE_BYTE ? TOKEN_TYPE_NORMAL : type)) } };
    });
  await writeGguf(file, metadata, []);
  return file;
}

async function forged(file: string, sizeMb: number, seed: number, weightType: "f16" | "q8_0" = "f16"): Promise<void> {
  if (existsSync(file)) return;
  const started = performance.now();
  const partial = `${file}.partial`;
  const tokenizerFrom = await printableTokenizer(path.dirname(path.dirname(file)));
  await forgeModel({ sizeBytes: sizeMb * MB, outPath: partial, weightType, seed, tokenizerFrom });
  renameSync(partial, file);
  console.log(`  forged ${file} in ${fmt(performance.now() - started, 0)} ms`);
}

/** Writes the files under `dir` when missing (reused after). */
export async function preparePeerFiles(dir: string): Promise<PeerFiles> {
  const swapDir = path.join(dir, "swap");
  const memoryDir = path.join(dir, "memory");
  mkdirSync(swapDir, { recursive: true });
  mkdirSync(memoryDir, { recursive: true });
  const tiny = path.join(swapDir, "stories260K.gguf");
  if (!existsSync(tiny)) copyFileSync(path.join(PROJECT_ROOT, "models/stories260K.gguf"), tiny);
  await forged(path.join(swapDir, "f16-100MB.gguf"), 100, 100);
  await forged(path.join(swapDir, "f16-600MB.gguf"), 600, 600);
  for (let i = 1; i <= 5; i++) await forged(path.join(memoryDir, `f16-100MB-${i}.gguf`), 100, 1000 + i);
  const model = (file: string, label: string): PeerModel => ({ name: path.basename(file, ".gguf"), label, path: file, fileBytes: statSync(file).size });
  return {
    swapDir,
    memoryDir,
    swap: [model(tiny, "1 MB"), model(path.join(swapDir, "f16-100MB.gguf"), "100 MB"), model(path.join(swapDir, "f16-600MB.gguf"), "600 MB")],
    memory: [1, 2, 3, 4, 5].map((i) => model(path.join(memoryDir, `f16-100MB-${i}.gguf`), "100 MB")),
  };
}

/**
 * The research plan's scenario 1 in miniature: `count` distinct Q8_0 stand-ins of `sizeMb` each
 * (0.5B-class models are ~0.5 GB in Q8_0; scaled down to what this box runs), in a folder of
 * their own (the router's --models-dir), named `q8-<size>MB-<i>`.
 */
export async function prepareScenarioFiles(dir: string, count: number, sizeMb: number): Promise<{ models: PeerModel[]; dir: string }> {
  const scenarioDir = path.join(dir, `scenario-q8-${sizeMb}MB`);
  mkdirSync(scenarioDir, { recursive: true });
  const models: PeerModel[] = [];
  for (let i = 1; i <= count; i++) {
    const file = path.join(scenarioDir, `q8-${sizeMb}MB-${i}.gguf`);
    await forged(file, sizeMb, 2000 + i, "q8_0");
    models.push({ name: path.basename(file, ".gguf"), label: `${sizeMb} MB Q8_0`, path: file, fileBytes: statSync(file).size });
  }
  return { models, dir: scenarioDir };
}

/** Reads every file once so that loads come from page cache. */
export async function warmPageCache(models: readonly PeerModel[]): Promise<void> {
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (const model of models) {
    const handle = await open(model.path, "r");
    try {
      while ((await handle.read(buffer, 0, buffer.length)).bytesRead > 0);
    } finally {
      await handle.close();
    }
  }
}

/**
 * modelswap's config document for these models (as YAML would hold it). `spareRunners`: the
 * swap test keeps one warm spare (its calibration counts two runners); the memory tests use the
 * default config's 0 (a shared runner already exists once a model is resident).
 */
export function peerConfigDocument(models: readonly PeerModel[], budgetBytes: number, spareRunners = 1): Record<string, unknown> {
  return {
    listen: "127.0.0.1:0",
    budget: String(Math.round(budgetBytes)),
    placement: { listen: "127.0.0.1:0", eviction: "lru", spare_runners: spareRunners, queue_timeout: "120s" },
    defaults: { context: PEER_CONTEXT, threads: PEER_THREADS, gpu: "cpu", sequences: 1 },
    models: models.map((model) => ({ name: model.name, path: model.path, sampling: { temperature: 0, repeat_penalty: 1 } })),
  };
}

export function peerConfig(models: readonly PeerModel[], budgetBytes: number, spareRunners = 1): Config {
  return parseConfig(peerConfigDocument(models, budgetBytes, spareRunners), PROJECT_ROOT);
}

export const getStatus = (admin: AdminClient) => callUnary<StatusResponse>((done) => admin.getStatus({}, done));

/**
 * Waits (at most `timeoutMs`) until no runner is starting, loading, unloading or stopping (a spare
 * that placement starts after a load shows as "starting" at once); false if it never settled.
 */
export async function modelswapSettled(admin: AdminClient, timeoutMs = 20_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    const status = await getStatus(admin);
    const quiet = status.runners.every((runner) => runner.state === "ready" || runner.state === "spare");
    if (quiet) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

export interface OneModelBudget {
  budgetBytes: number;
  footprints: Map<string, number>;
  runnerBytes: number;
}

/**
 * The budget that holds the biggest model and no second one: measured footprints and a runner's
 * own RSS from loading every model once under a large budget. Placement charges each runner
 * (the serving one and the warm spare) plus the models they hold.
 */
export async function oneModelBudget(models: readonly PeerModel[], options: { verbose?: boolean } = {}): Promise<OneModelBudget> {
  const stack: LocalStack = await startLocalStack(peerConfig(models, 16 * 1024 ** 3), options);
  try {
    for (const model of models) await callUnary((done) => stack.admin.loadModel({ model: model.name }, done));
    await modelswapSettled(stack.admin);
    const status = await getStatus(stack.admin);
    const footprints = new Map(status.models.map((entry) => [entry.info!.name, entry.info!.measuredBytes || entry.info!.estimatedBytes]));
    const spares = status.runners.filter((runner) => runner.state === "spare" && runner.rssBytes > 0);
    const runnerBytes = spares.length > 0 ? Math.max(...spares.map((runner) => runner.rssBytes)) : 150 * MB;
    const sizes = [...footprints.values()];
    const budgetBytes = Math.ceil(Math.max(...sizes) + 2 * runnerBytes + Math.min(...sizes) / 2);
    return { budgetBytes, footprints, runnerBytes };
  } finally {
    await stack.stop();
  }
}
