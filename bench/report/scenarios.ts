import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { parseConfig } from "../../common/config/parse-config.js";
import type { Config } from "../../common/config/config-types.js";
import { parseSize } from "../../common/parse-size.js";
import { forgeModel } from "../../forge/forge-model.js";

/**
 * The research plan's three scenarios (deploy/*.yaml) scaled by one factor: every model's
 * size (the configs' forge_size: the plan's sizes), the model budget and every context.
 * A runner's own memory (~100 MiB of Node + llama.cpp) does not shrink with the models, so a
 * scaled budget keeps the room the full one has for it: budget = f x plan budget +
 * (1 - f) x runners x RUNNER_ALLOWANCE (nothing is added at f = 1).
 */

export type ScenarioId = "five-small" | "one-large-two-small" | "large-hot-swap";
export const SCENARIO_FILES: Record<ScenarioId, string> = {
  "five-small": "deploy/five-small.yaml",
  "one-large-two-small": "deploy/one-large-two-small.yaml",
  "large-hot-swap": "deploy/large-hot-swap.yaml",
};
/** A Node runner's own memory before any model (DESIGN.md: ~125 MiB; 96-129 MiB measured here). */
export const RUNNER_ALLOWANCE_BYTES = 128 * 1024 ** 2;
const MIN_CONTEXT = 256;

export interface ScenarioModel {
  name: string;
  /** Parameters in billions, read from the plan's file name (qwen2.5-0.5b -> 0.5), NaN when it names none. */
  paramsB: number;
  /** The plan's file size (forge_size). */
  planBytes: number;
  path: string;
  fileBytes: number;
  /** A real model file from models/, not a forged stand-in. */
  real: boolean;
  tasks: string[];
}

export interface Scenario {
  id: ScenarioId;
  file: string;
  /** The scaled config document (what a YAML file would hold). */
  document: Record<string, unknown>;
  models: ScenarioModel[];
  planBudgetBytes: number;
  budgetBytes: number;
  /** Runner processes the scenario keeps (the shared runner, spares, one per isolated model). */
  runners: number;
}

/** Parameters in billions from a model file name: "qwen2.5-0.5b-instruct" -> 0.5, "smollm2-360m" -> 0.36, "stories260K" -> 0.00026. */
export function paramsFromFileName(file: string): number {
  const base = path.basename(file, ".gguf").toLowerCase();
  const match = /(?:^|[-_a-z])(\d+(?:\.\d+)?)([kmb])(?![a-z0-9])/.exec(base);
  if (!match) return Number.NaN;
  const scale = { k: 1e-6, m: 1e-3, b: 1 }[match[2] as "k" | "m" | "b"];
  return Number(match[1]) * scale;
}

export const scaledContext = (context: number, factor: number) => Math.max(MIN_CONTEXT, Math.round((context * factor) / 64) * 64);

type RawModel = Record<string, unknown> & { name: string; path: string };

export interface ScaleOptions {
  projectRoot: string;
  factor: number;
  /** Where forged stand-ins are written (reused when there). */
  forgeDir: string;
  /** Where real models are looked for by the plan's file name. */
  modelsDir: string;
  gpu: string;
  /** Extra copies of the scenario's first 0.5B-class model, named small-1.. (test 1 looks for the limit). */
  extraSmallCopies?: number;
  /** Overrides per model (isolation, replicas, sequences). */
  modelOverrides?: Record<string, unknown>;
  /** Overrides placement.spare_runners (--quick starts none: each runner start costs seconds of CPU). */
  spareRunners?: number;
  onForge?: (file: string) => void;
}

export async function scaleScenario(id: ScenarioId, options: ScaleOptions): Promise<Scenario> {
  const file = SCENARIO_FILES[id];
  const raw = parse(readFileSync(path.join(options.projectRoot, file), "utf8")) as Record<string, unknown>;
  const f = options.factor;
  const planBudgetBytes = parseSize(String(raw.budget));
  const placement = { ...(raw.placement as Record<string, unknown>) };
  delete placement.state_file;
  placement.listen = "127.0.0.1:0";
  if (options.spareRunners !== undefined) placement.spare_runners = options.spareRunners;
  const defaults = { ...((raw.defaults as Record<string, unknown> | undefined) ?? {}) };
  defaults.gpu = options.gpu;
  defaults.context = scaledContext(Number(defaults.context ?? 2048), f);
  defaults.sampling = { temperature: 0, repeat_penalty: 1 };
  delete defaults.ttl; // the report drives residency itself

  const rawModels = [...(raw.models as RawModel[])];
  const firstSmall = rawModels.find((model) => Math.abs(paramsFromFileName(model.path) - 0.5) < 0.01);
  for (let copy = 1; copy <= (options.extraSmallCopies ?? 0) && firstSmall; copy++) {
    rawModels.push({ ...firstSmall, name: `small-${copy}`, tasks: [] });
  }
  const models: ScenarioModel[] = [];
  const documentModels: Record<string, unknown>[] = [];
  for (const model of rawModels) {
    const planBytes = parseSize(String(model.forge_size));
    const { path: modelPath, real } = await modelFile(model, planBytes, options);
    models.push({
      name: model.name,
      paramsB: paramsFromFileName(model.path),
      planBytes,
      path: modelPath,
      fileBytes: statSync(modelPath).size,
      real,
      tasks: (model.tasks as string[] | undefined) ?? [],
    });
    const scaled: Record<string, unknown> = { ...model, path: modelPath, ...(options.modelOverrides ?? {}) };
    delete scaled.forge_size;
    if (model.context !== undefined) scaled.context = scaledContext(Number(model.context), f);
    documentModels.push(scaled);
  }
  const isolated = documentModels.filter((model) => (model.isolation ?? defaults.isolation) === "process").length;
  const shared = documentModels.length - isolated > 0 ? 1 : 0;
  const runners = shared + Number(placement.spare_runners ?? 0) + isolated;
  const budgetBytes = Math.round(f * planBudgetBytes + (1 - f) * runners * RUNNER_ALLOWANCE_BYTES);
  const document: Record<string, unknown> = {
    listen: "127.0.0.1:0",
    budget: String(budgetBytes),
    placement,
    defaults,
    models: documentModels,
    ...(raw.routes ? { routes: raw.routes } : {}),
    ...(raw.prefer_resident !== undefined ? { prefer_resident: raw.prefer_resident } : {}),
  };
  return { id, file, document, models, planBudgetBytes, budgetBytes, runners };
}

/** The scenario's config with overrides (a larger budget, other placement settings). */
export function scenarioConfig(scenario: Scenario, projectRoot: string, overrides: { budgetBytes?: number; placement?: Record<string, unknown> } = {}): Config {
  const document = { ...scenario.document };
  if (overrides.budgetBytes !== undefined) document.budget = String(Math.round(overrides.budgetBytes));
  if (overrides.placement) document.placement = { ...(document.placement as Record<string, unknown>), ...overrides.placement };
  return parseConfig(document, projectRoot);
}

/**
 * The real file (modelsDir/<the plan's file name>) when present and usable at this scale (at
 * scale 1, or no bigger than the scaled model: a tiny real model fits anywhere a stand-in does),
 * else a random-weight Q8_0 stand-in of planBytes x factor, forged once and reused.
 */
async function modelFile(model: RawModel, planBytes: number, options: ScaleOptions): Promise<{ path: string; real: boolean }> {
  const scaledBytes = Math.round(planBytes * options.factor);
  const real = path.join(options.modelsDir, path.basename(model.path));
  if (existsSync(real) && (options.factor === 1 || statSync(real).size <= Math.max(scaledBytes, 8e6))) return { path: real, real: true };
  mkdirSync(options.forgeDir, { recursive: true });
  const forged = path.join(options.forgeDir, `${model.name}-${scaledBytes}B-q8_0.gguf`);
  if (!existsSync(forged)) {
    options.onForge?.(forged);
    const partial = `${forged}.partial`;
    await forgeModel({ sizeBytes: scaledBytes, outPath: partial, weightType: "q8_0", seed: seedOf(model.name) });
    renameSync(partial, forged);
  }
  return { path: forged, real: false };
}

function seedOf(name: string): number {
  let hash = 2166136261;
  for (const char of name) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  return hash;
}
