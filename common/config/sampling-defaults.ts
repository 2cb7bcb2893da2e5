import type { SamplingDefaults } from "./config-types.js";

/**
 * The ranges a sampling value may take anywhere it is set: in config, and on a runner (which
 * gets the router's resolved values). The gateway takes requests within these, narrowed
 * further for top_k (at most 1000) and top_p (above 0).
 */
export const SAMPLING_RANGES = Object.freeze({
  temperature: { min: 0, max: 2 },
  topP: { min: 0, max: 1 },
  minP: { min: 0, max: 1 },
  repeatPenalty: { min: 1, max: 2 },
});

/**
 * The one set of sampling defaults: a model's `sampling` in config starts from these, the
 * router fills unset request fields from the model's, and a runner asked without sampling
 * uses these too.
 */
export const SAMPLING_DEFAULTS: Readonly<SamplingDefaults> = Object.freeze({
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1.1,
});
