import { credentials } from "@grpc/grpc-js";
import type { Config } from "../common/config/config-types.js";
import { HealthStatus, watchHealth } from "../common/grpc/health.js";
import { reflectionBindings } from "../common/grpc/reflection.js";
import { startServer } from "../common/grpc/start-server.js";
import { tracingClientOptions } from "../common/telemetry/propagation.js";
import { registerGatewayMetrics } from "../common/telemetry/request-tracing.js";
import type { Logger } from "../common/logger.js";
import { PlacementClient } from "../gen/modelswap/v1/placement.js";
import { Router } from "../services/router/router.js";
import { adminService } from "./admin-service.js";
import { inferenceService } from "./inference-service.js";

export interface RunningGateway {
  address: string;
  router: Router;
  stop(): Promise<void>;
}

/** Boots the public gRPC front door with the router, talking to placement at `placementAddress`. */
export async function startGateway(options: { config: Config; placementAddress: string; logger: Logger; listen?: string }): Promise<RunningGateway> {
  const { config, logger } = options;
  // Calls to placement and runners carry the active trace context (W3C traceparent in metadata).
  const placement = new PlacementClient(options.placementAddress, credentials.createInsecure(), tracingClientOptions);
  const router = new Router({ placement, routes: config.routes, preferResident: config.preferResident, logger, runnerClientOptions: tracingClientOptions });
  const services = [inferenceService(router, logger, config.maxPromptBytes), adminService(placement, logger)];
  registerGatewayMetrics();
  // grpc.health.v1: NOT_SERVING until placement says SERVING (and again while draining).
  const health = new HealthStatus(services);
  const server = await startServer(options.listen ?? config.listen, [...services, health.binding(), ...reflectionBindings(services)]);
  let draining = false;
  const stopWatching = watchHealth(options.placementAddress, (serving) => {
    health.setServing(serving && !draining);
    logger.info("placement_health", { serving });
  });
  logger.info("gateway_listening", { address: server.address, placement: options.placementAddress });
  return {
    address: server.address,
    router,
    stop: async () => {
      draining = true;
      health.setServing(false);
      stopWatching();
      await server.shutdown(1000);
      router.close();
      placement.close();
    },
  };
}
