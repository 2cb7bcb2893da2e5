/**
 * Environment variables of the internal planes. Only the entry files read them
 * (cli/cli-env.ts, services/runner/runner-env.ts); placement sets the runner's.
 */
/** The internal secret (how `serve` hands it to its placement process). */
export const INTERNAL_SECRET_ENV = "MODELSWAP_INTERNAL_SECRET";
/** A runner's own key, derived from the secret for its id (set by placement). */
export const RUNNER_KEY_ENV = "MODELSWAP_RUNNER_KEY";
