import { status } from "@grpc/grpc-js";
import type { ApiKeyConfig } from "../config/config-types.js";
import { ModelswapError } from "../errors.js";
import type { MetricsAuthorizer } from "../telemetry/telemetry.js";
import { ApiKeys } from "./api-keys.js";

/** Who may scrape /metrics with telemetry.metrics_auth: a key with the `metrics` or `admin` scope. */
export function metricsAuthorizer(keys: readonly ApiKeyConfig[]): MetricsAuthorizer {
  const apiKeys = new ApiKeys(keys);
  return (authorization) => {
    try {
      apiKeys.authorize(authorization, "metrics", "GET /metrics");
      return undefined;
    } catch (error) {
      if (!(error instanceof ModelswapError)) throw error;
      return { status: error.code === status.PERMISSION_DENIED ? 403 : 401, message: error.message };
    }
  };
}
