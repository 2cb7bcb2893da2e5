import { credentials } from "@grpc/grpc-js";
import type { Config } from "../../common/config/config-types.js";
import { createLogger } from "../../common/logger.js";
import { startGateway, type RunningGateway } from "../../gateway/gateway-server.js";
import { AdminClient } from "../../gen/modelswap/v1/admin.js";
import { InferenceClient } from "../../gen/modelswap/v1/inference.js";
import { startPlacement, type PlacementServerOptions, type RunningPlacement } from "../../services/placement/placement-server.js";

/** Placement (with its runner processes) + gateway in this process, and clients of the gateway. */
export interface LocalStack {
  placement: RunningPlacement;
  gateway: RunningGateway;
  inference: InferenceClient;
  admin: AdminClient;
  stop(): Promise<void>;
}

/** Every stack still running, so that a bench's time limit or an error can stop them all. */
export const runningStacks = new Set<LocalStack>();

export const stopAllStacks = () => Promise.all([...runningStacks].map((stack) => stack.stop()));

export async function startLocalStack(
  config: Config,
  options: { verbose?: boolean } & Pick<PlacementServerOptions, "onEvent" | "onRunnerEvent"> = {},
): Promise<LocalStack> {
  const logger = createLogger("bench", {}, { quiet: !options.verbose });
  const placement = await startPlacement({
    config,
    logger,
    listen: "127.0.0.1:0",
    runnerEnv: options.verbose ? {} : { MODELSWAP_LOG: "silent" },
    onEvent: options.onEvent,
    onRunnerEvent: options.onRunnerEvent,
  });
  const gateway = await startGateway({ config, placementAddress: placement.address, internalSecret: placement.internalSecret, logger, listen: "127.0.0.1:0" });
  const inference = new InferenceClient(gateway.address, credentials.createInsecure());
  const admin = new AdminClient(gateway.address, credentials.createInsecure());
  const stack: LocalStack = {
    placement,
    gateway,
    inference,
    admin,
    stop: async () => {
      runningStacks.delete(stack);
      inference.close();
      admin.close();
      await gateway.stop();
      await placement.stop(); // ends its runners and waits for them
    },
  };
  runningStacks.add(stack);
  return stack;
}
