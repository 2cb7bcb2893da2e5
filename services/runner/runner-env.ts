import { parseArgs } from "node:util";
import { LOG_FORMATS, type LogFormat, type LogOptions } from "../../common/logger.js";

/** The runner's settings, from its command line (placement passes them when it spawns it). */
export interface RunnerEnv {
  runnerId: string;
  placementAddress: string;
  listen: string;
  gpu: string;
  reconnectGraceMs: number;
  heartbeatMs: number;
  /** GPU allocations come out of the same DRAM as RSS (Jetson): a load is measured as one figure. */
  unifiedMemory: boolean;
  /** MODELSWAP_LOG=silent quiets; MODELSWAP_LOG_FORMAT (set by the CLI that started placement) picks json or pretty. */
  log: LogOptions;
}

export function readRunnerEnv(argv: string[] = process.argv.slice(2)): RunnerEnv {
  const { values } = parseArgs({
    args: argv,
    options: {
      id: { type: "string" },
      placement: { type: "string" },
      listen: { type: "string", default: "127.0.0.1:0" },
      gpu: { type: "string", default: "auto" },
      "reconnect-grace-ms": { type: "string", default: "15000" },
      "heartbeat-ms": { type: "string", default: "1000" },
      // CPU and GPU share the DRAM (Jetson): placement decides it once and tells its runners.
      "unified-memory": { type: "boolean", default: false },
    },
    strict: true,
  });
  if (!values.id || !values.placement) throw new Error("runner needs --id and --placement HOST:PORT (placement starts runners itself)");
  const requested = process.env.MODELSWAP_LOG_FORMAT as LogFormat | undefined;
  const format: LogFormat = requested && LOG_FORMATS.includes(requested) ? requested : "json";
  return {
    runnerId: values.id,
    placementAddress: values.placement,
    listen: values.listen!,
    gpu: values.gpu!,
    reconnectGraceMs: Number(values["reconnect-grace-ms"]),
    heartbeatMs: Number(values["heartbeat-ms"]),
    unifiedMemory: values["unified-memory"]!,
    log: { format, quiet: process.env.MODELSWAP_LOG === "silent", colors: format === "pretty" && process.stderr.isTTY === true && !process.env.NO_COLOR },
  };
}
