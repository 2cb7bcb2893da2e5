import { ServerCredentials } from "@grpc/grpc-js";
import type { Config } from "../common/config/config-types.js";
import { HealthStatus, watchHealth } from "../common/grpc/health.js";
import { reflectionBindings } from "../common/grpc/reflection.js";
import { startServer } from "../common/grpc/start-server.js";
import { tracingClientOptions } from "../common/telemetry/propagation.js";
import { registerGatewayMetrics } from "../common/telemetry/request-tracing.js";
import type { Logger } from "../common/logger.js";
import { ClusterPlacements } from "../services/cluster/cluster-placements.js";
import { authenticatedPlacementClient } from "../common/internal-auth/placement-client.js";
import type { InternalSecret } from "../common/internal-auth/internal-secret.js";
import { Router } from "../services/router/router.js";
import { adminService } from "./admin-service.js";
import { ApiKeys } from "../common/auth/api-keys.js";
import { guardService } from "./auth/guard-service.js";
import { startHttpApi, type RunningHttpApi } from "./http/http-api.js";
import { inferenceService } from "./inference-service.js";
import { modelLabels } from "./model-labels.js";
import { readTlsFiles } from "./read-tls-files.js";
import { generateRunner } from "./run-generate.js";

export interface RunningGateway {
  address: string;
  /** host:port of the OpenAI-compatible HTTP API, when `http` is configured. */
  httpAddress: string | undefined;
  router: Router;
  stop(): Promise<void>;
}

/** Headroom over max_prompt_bytes for the rest of a request message (names, roles, stop strings, framing). */
const MESSAGE_HEADROOM_BYTES = 64 * 1024;

export interface GatewayOptions {
  config: Config;
  placementAddress: string;
  /** The internal secret placement holds (the same file or the same `serve`). */
  internalSecret: InternalSecret;
  logger: Logger;
  listen?: string;
}

/** Boots the public gRPC front door with the router, talking to placement at `placementAddress`. */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { config, logger } = options;
  const tls = config.tls ? readTlsFiles(config.tls) : undefined;
  const keys = config.auth ? new ApiKeys(config.auth.keys) : undefined;
  // Calls to placement and runners carry the active trace context (W3C traceparent in metadata);
  // calls to placement are signed, and its leases checked, with the internal secret.
  const placement = authenticatedPlacementClient(options.placementAddress, options.internalSecret, tracingClientOptions);
  // More than one box: each request's lease comes from the box the registry says serves its model best.
  const cluster = config.cluster
    ? await ClusterPlacements.start({ cluster: config.cluster, local: { box: config.cluster.box, placement }, logger, clientOptions: tracingClientOptions, internalSecret: options.internalSecret })
    : undefined;
  const router = new Router({
    placement,
    placementFor: cluster?.resolve,
    routes: config.routes,
    preferResident: config.preferResident,
    logger,
    runnerClientOptions: tracingClientOptions,
  });
  const runGenerate = generateRunner(router, modelLabels(config.models));
  // Inference needs the `infer` scope, Admin `admin`; health and reflection stay open.
  const services = [
    guardService(inferenceService(router, runGenerate, logger, config.maxPromptBytes), "infer", keys, logger),
    guardService(adminService(placement, logger), "admin", keys, logger),
  ];
  registerGatewayMetrics();
  // grpc.health.v1: NOT_SERVING until placement says SERVING (and again while draining).
  const health = new HealthStatus(services);
  const server = await startServer(options.listen ?? config.listen, [...services, health.binding(), ...reflectionBindings(services)], {
    credentials: tls ? ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false) : undefined,
    // Requests larger than any valid one are refused by grpc-js before they are decoded or copied.
    maxReceiveMessageBytes: config.maxPromptBytes + MESSAGE_HEADROOM_BYTES,
  });
  let http: RunningHttpApi | undefined;
  try {
    if (config.http) {
      http = await startHttpApi({
        listen: config.http.listen,
        router,
        runGenerate,
        maxPromptBytes: config.maxPromptBytes,
        logger,
        keys,
        tls,
        serving: () => health.serving,
      });
    }
  } catch (error) {
    await server.shutdown(0);
    router.close();
    await cluster?.stop();
    placement.close();
    throw error;
  }
  let draining = false;
  const stopWatching = watchHealth(options.placementAddress, (serving) => {
    health.setServing(serving && !draining);
    logger.info("placement_health", { serving });
  });
  logger.info("gateway_listening", { address: server.address, http: http?.address, tls: tls !== undefined, auth: keys !== undefined, placement: options.placementAddress });
  return {
    address: server.address,
    httpAddress: http?.address,
    router,
    stop: async () => {
      draining = true;
      health.setServing(false);
      stopWatching();
      await Promise.all([server.shutdown(1000), http?.close()]);
      router.close();
      await cluster?.stop();
      placement.close();
    },
  };
}
