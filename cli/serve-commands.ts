import { fileURLToPath } from "node:url";
import type { Config } from "../common/config/config-types.js";
import { readConfigFile } from "../common/config/read-config-file.js";
import { INTERNAL_SECRET_ENV } from "../common/internal-auth/internal-env.js";
import type { InternalSecret } from "../common/internal-auth/internal-secret.js";
import { createLogger, type LogOptions } from "../common/logger.js";
import { metricsAuthorizer } from "../common/auth/metrics-access.js";
import { exitAfterFlush, metricsEndpoint, startTelemetry } from "../common/telemetry/telemetry.js";
import type { startGateway as StartGateway } from "../gateway/gateway-server.js";
import { substituteForgedModels } from "./forged-models.js";
import { PlacementSupervisor, READY_PREFIX } from "./placement-supervisor.js";

const CLI_MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
/**
 * Placement allocates little JavaScript per request (one Acquire per stream; tokens never pass
 * through it): a 2 MiB V8 young generation instead of the default 16 MiB. Measured on the 2-core
 * box, placement's modules loaded: 73 MB RSS by default, 67 MB with 2 MiB.
 */
const PLACEMENT_NODE_FLAGS = ["--max-semi-space-size=2"];

export interface PlacementCommandOptions {
  configFile: string;
  forgeMissing: boolean;
  log: LogOptions;
  internalSecret: InternalSecret;
  /** Overrides placement.listen (serve restarts placement on the address the first one bound). */
  listen: string | undefined;
  /** End when stdin closes: the parent (serve) is gone. */
  supervised: boolean;
}

/** `modelswap placement`: placement alone (it starts its runners); prints one ready line with its address. */
export async function placementCommand(options: PlacementCommandOptions): Promise<void> {
  const logger = createLogger("placement", {}, options.log);
  const config = await substituteForgedModels(readConfigFile(options.configFile), options.forgeMissing, (line) => logger.info("forge", { line }));
  // OTEL_* from the environment; runners inherit it. /metrics on telemetry.metrics_port.
  await startTelemetry({ role: "placement", logger, metrics: metricsServing(config, "placement") });
  // Each process imports the server it runs, not the other (the gateway's HTTP stack costs placement ~8 MB RSS).
  const { startPlacement } = await import("../services/placement/placement-server.js");
  const placement = await startPlacement({ config, logger, listen: options.listen, internalSecret: options.internalSecret });
  process.stdout.write(`${READY_PREFIX}${placement.address}\n`);
  // Under serve, Ctrl-C reaches placement too, but serve ends it (SIGTERM, or stdin closing) after the gateway.
  const stop = onStopSignals(
    async () => {
      await placement.stop();
      await exitAfterFlush(0);
    },
    options.supervised ? ["SIGTERM"] : ["SIGTERM", "SIGINT"],
  );
  if (options.supervised) {
    process.on("SIGINT", () => undefined);
    process.stdin.once("close", () => void stop());
    process.stdin.resume();
  }
}

/** `modelswap gateway`: the public front door, pointed at a running placement that holds the same internal secret. */
export async function gatewayCommand(configFile: string, placementAddress: string, internalSecret: InternalSecret, log: LogOptions): Promise<void> {
  const logger = createLogger("gateway", {}, log);
  const config = readConfigFile(configFile);
  await startTelemetry({ role: "gateway", logger, metrics: metricsServing(config, "gateway") });
  const { startGateway } = await import("../gateway/gateway-server.js");
  const gateway = await startGateway({ config, placementAddress, internalSecret, logger });
  onStopSignals(async () => {
    await gateway.stop();
    await exitAfterFlush(0);
  });
}

/**
 * `modelswap serve`: the gateway in this process, placement in a child process that is
 * restarted when it dies (PlacementSupervisor). The internal secret reaches placement in
 * its environment, never its argv.
 */
export async function serveCommand(configFile: string, forgeMissing: boolean, internalSecret: InternalSecret, log: LogOptions): Promise<void> {
  const logger = createLogger("gateway", {}, log);
  const config = await substituteForgedModels(readConfigFile(configFile), forgeMissing, (line) => process.stderr.write(line + "\n"));
  // The gateway's telemetry (/metrics on metrics_port + 1); placement, a child with this environment, starts its own.
  await startTelemetry({ role: "gateway", logger, metrics: metricsServing(config, "gateway") });
  const supervisor = new PlacementSupervisor({
    args: [...PLACEMENT_NODE_FLAGS, CLI_MAIN, "placement", "-c", configFile, "--supervised", ...(forgeMissing ? ["--forge-missing"] : [])],
    env: { ...process.env, [INTERNAL_SECRET_ENV]: internalSecret.toText() },
    logger,
    onOutput: (line) => process.stdout.write(line + "\n"),
    onReady: (address, pid, restarts) =>
      process.stdout.write(restarts > 0 ? `modelswap placement restarted on ${address} (pid ${pid}, restart ${restarts})\n` : `modelswap placement started on ${address} (pid ${pid})\n`),
  });
  let gateway: Awaited<ReturnType<typeof StartGateway>> | undefined;
  // Whatever happens from here, placement (and through it the runners) ends with us.
  const stop = async (code: number) => {
    await gateway?.stop();
    await supervisor.stop();
    await exitAfterFlush(code);
  };
  const stopOnce = onStopSignals(() => stop(0));
  try {
    const [placementAddress, { startGateway }] = await Promise.all([supervisor.start(), import("../gateway/gateway-server.js")]);
    gateway = await startGateway({ config, placementAddress, internalSecret, logger });
    process.stdout.write(`modelswap serving on ${gateway.address} (placement ${placementAddress}); Ctrl-C stops\n`);
  } catch (error) {
    logger.error("serve_failed", { error });
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    void stopOnce(() => stop(1));
  }
}

/** Where a role serves /metrics, and who may scrape it (telemetry.metrics_auth: keys with the metrics or admin scope). */
function metricsServing(config: Config, role: "gateway" | "placement") {
  return { ...metricsEndpoint(config.telemetry, role), authorize: config.telemetry.metricsAuth && config.auth ? metricsAuthorizer(config.auth.keys) : undefined };
}

/** Ctrl-C or SIGTERM (or just `signals`) runs `stop` once; the returned function runs it (or another ending) once too. */
function onStopSignals(stop: () => Promise<void>, signals: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT"]): (ending?: () => Promise<void>) => Promise<void> {
  let stopping: Promise<void> | undefined;
  const once = (ending: () => Promise<void> = stop) => (stopping ??= ending());
  for (const signal of signals) process.once(signal, () => void once());
  return once;
}
