import { status } from "@grpc/grpc-js";
import type { ApiKeyConfig } from "../config/config-types.js";
import { ModelswapError } from "../errors.js";
import type { MetricsAuthorizer } from "../telemetry/telemetry.js";
import { ApiKeys } from "./api-keys.js";

/**
 * Who may scrape /metrics with telemetry.metrics_auth: a key with the `metrics` or `admin`
 * scope (none: undefined, anyone; the endpoint then belongs on loopback or a private network).
 */
export function metricsAuthorizer(keys: readonly ApiKeyConfig[] | undefined): MetricsAuthorizer | undefined {
  if (!keys || keys.length === 0) return undefined;
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
