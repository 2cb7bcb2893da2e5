import { credentials } from "@grpc/grpc-js";
import type { Config } from "../common/config/config-types.js";
import { startServer } from "../common/grpc/start-server.js";
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
  const placement = new PlacementClient(options.placementAddress, credentials.createInsecure());
  const router = new Router({ placement, routes: config.routes, preferResident: config.preferResident, logger });
  const server = await startServer(options.listen ?? config.listen, [
    inferenceService(router, logger, config.maxPromptBytes),
    adminService(placement, logger),
  ]);
  logger.info("gateway_listening", { address: server.address, placement: options.placementAddress });
  return {
    address: server.address,
    router,
    stop: async () => {
      await server.shutdown(1000);
      router.close();
      placement.close();
    },
  };
}
