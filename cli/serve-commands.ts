import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { readConfigFile } from "../common/config/read-config-file.js";
import { createLogger, type LogOptions } from "../common/logger.js";
import { exitAfterFlush, metricsEndpoint, startTelemetry } from "../common/telemetry/telemetry.js";
import { startGateway } from "../gateway/gateway-server.js";
import { startPlacement } from "../services/placement/placement-server.js";
import { substituteForgedModels } from "./forged-models.js";

const CLI_MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const READY_PREFIX = "modelswap-placement-ready ";

/** `modelswap placement`: placement alone (it starts its runners); prints one ready line with its address. */
export async function placementCommand(configFile: string, forgeMissing: boolean, log: LogOptions): Promise<void> {
  const logger = createLogger("placement", {}, log);
  const config = await substituteForgedModels(readConfigFile(configFile), forgeMissing, (line) => logger.info("forge", { line }));
  // OTEL_* from the environment; runners inherit it. /metrics on telemetry.metrics_port.
  startTelemetry({ role: "placement", logger, metrics: metricsEndpoint(config.telemetry, "placement") });
  const placement = await startPlacement({ config, logger });
  process.stdout.write(`${READY_PREFIX}${placement.address}\n`);
  onStopSignals(async () => {
    await placement.stop();
    await exitAfterFlush(0);
  });
}

/** `modelswap gateway`: the public front door, pointed at a running placement. */
export async function gatewayCommand(configFile: string, placementAddress: string, log: LogOptions): Promise<void> {
  const logger = createLogger("gateway", {}, log);
  const config = readConfigFile(configFile);
  startTelemetry({ role: "gateway", logger, metrics: metricsEndpoint(config.telemetry, "gateway") });
  const gateway = await startGateway({ config, placementAddress, logger });
  onStopSignals(async () => {
    await gateway.stop();
    await exitAfterFlush(0);
  });
}

/** `modelswap serve`: placement in its own process (which starts the runners) and the gateway in this one. */
export async function serveCommand(configFile: string, forgeMissing: boolean, log: LogOptions): Promise<void> {
  const logger = createLogger("gateway", {}, log);
  const config = await substituteForgedModels(readConfigFile(configFile), forgeMissing, (line) => process.stderr.write(line + "\n"));
  // The gateway's telemetry (/metrics on metrics_port + 1); placement, a child with this environment, starts its own.
  startTelemetry({ role: "gateway", logger, metrics: metricsEndpoint(config.telemetry, "gateway") });
  const args = [CLI_MAIN, "placement", "-c", configFile, ...(forgeMissing ? ["--forge-missing"] : [])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  let stopping = false;
  // Whatever happens from here, placement (and through it the runners) ends with us.
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await gateway?.stop();
    child.kill("SIGTERM");
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once("exit", resolve));
    await exitAfterFlush(code);
  };
  onStopSignals(() => stop(0));
  try {
    const placementAddress = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        if (line.startsWith(READY_PREFIX)) resolve(line.slice(READY_PREFIX.length));
        else process.stdout.write(line + "\n");
      });
      child.once("exit", (code) => reject(new Error(`placement exited with code ${code} before it was ready`)));
    });
    gateway = await startGateway({ config, placementAddress, logger });
    process.stdout.write(`modelswap serving on ${gateway.address} (placement ${placementAddress}); Ctrl-C stops\n`);
  } catch (error) {
    logger.error("serve_failed", { error });
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    await stop(1);
    return;
  }
  child.once("exit", (code) => {
    if (!stopping) {
      logger.error("placement_exited", { code });
      void stop(1);
    }
  });
}

/** Ctrl-C or SIGTERM runs `stop` once. */
function onStopSignals(stop: () => Promise<void>): void {
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void stop());
}
