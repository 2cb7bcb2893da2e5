import type { SamplingDefaults } from "./config-types.js";

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
