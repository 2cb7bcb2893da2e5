import { existsSync } from "node:fs";
import path from "node:path";
import type { Config } from "../common/config/config-types.js";
import { forgeModel } from "../forge/forge-model.js";

/** Stand-in size when the model sets no forge_size. */
const FORGED_SIZE_BYTES = 20_000_000;

/** Where a model whose file is missing is forged (random weights) by `serve --forge-missing`. */
export function forgedPath(config: Config, modelName: string): string {
  return path.join(config.baseDir, ".forged", `${modelName}.gguf`);
}

/**
 * Points models whose file is missing at a forged stand-in, forging it when `forge` is set.
 * Models with a download source (path: hf:… or a URL) are left alone: they are pulled, not forged.
 */
export async function substituteForgedModels(config: Config, forge: boolean, log: (line: string) => void): Promise<Config> {
  const models = [];
  for (const model of config.models) {
    if (existsSync(model.path) || model.source) {
      models.push(model);
      continue;
    }
    const standIn = forgedPath(config, model.name);
    if (!existsSync(standIn) && forge) {
      const sizeBytes = model.forgeSizeBytes ?? FORGED_SIZE_BYTES;
      log(`model file ${model.path} is missing: forging a ${Math.round(sizeBytes / 1e6)} MB random-weight stand-in at ${standIn}`);
      await forgeModel({ sizeBytes, outPath: standIn, weightType: "q8_0" });
    }
    models.push(existsSync(standIn) ? { ...model, path: standIn } : model);
  }
  return { ...config, models };
}
