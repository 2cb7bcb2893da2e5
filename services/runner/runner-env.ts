import { parseArgs } from "node:util";
import { LOG_FORMATS, type LogFormat, type LogOptions } from "../../common/logger.js";
import { RUNNER_KEY_ENV } from "../../common/internal-auth/internal-env.js";
import { RunnerKey } from "../../common/internal-auth/runner-key.js";

/** The runner's settings, from its command line and environment (placement sets both when it spawns it). */
export interface RunnerEnv {
  runnerId: string;
  /** Its key for the internal planes (from MODELSWAP_RUNNER_KEY, removed from the environment once read). */
  key: RunnerKey;
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

export function readRunnerEnv(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): RunnerEnv {
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
  const key = RunnerKey.fromText(env[RUNNER_KEY_ENV]);
  if (!key) throw new Error(`runner needs its key in ${RUNNER_KEY_ENV} (placement starts runners itself)`);
  delete env[RUNNER_KEY_ENV];
  const requested = env.MODELSWAP_LOG_FORMAT as LogFormat | undefined;
  const format: LogFormat = requested && LOG_FORMATS.includes(requested) ? requested : "json";
  return {
    runnerId: values.id,
    key,
    placementAddress: values.placement,
    listen: values.listen!,
    gpu: values.gpu!,
    reconnectGraceMs: Number(values["reconnect-grace-ms"]),
    heartbeatMs: Number(values["heartbeat-ms"]),
    unifiedMemory: values["unified-memory"]!,
    log: { format, quiet: env.MODELSWAP_LOG === "silent", colors: format === "pretty" && process.stderr.isTTY === true && !env.NO_COLOR },
  };
}
