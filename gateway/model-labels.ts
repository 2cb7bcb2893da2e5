import type { ModelConfig } from "../common/config/config-types.js";

/** The metric label of requests whose model is not (or not yet) a catalog model. */
export const UNKNOWN_MODEL_LABEL = "unknown";

/**
 * Maps a name or alias from a request to its catalog name for metric labels, and
 * anything else to "unknown": label values come only from the config, never from users.
 */
export function modelLabels(models: readonly ModelConfig[]): (nameOrAlias: string) => string {
  const catalog = new Map<string, string>();
  for (const model of models) for (const name of [model.name, ...model.aliases]) catalog.set(name, model.name);
  return (nameOrAlias) => catalog.get(nameOrAlias) ?? UNKNOWN_MODEL_LABEL;
}
