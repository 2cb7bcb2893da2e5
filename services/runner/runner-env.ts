import { parseArgs } from "node:util";

/** The runner's settings, from its command line (placement passes them when it spawns it). */
export interface RunnerEnv {
  runnerId: string;
  placementAddress: string;
  listen: string;
  gpu: string;
  reconnectGraceMs: number;
  heartbeatMs: number;
  quietLogs: boolean;
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
    },
    strict: true,
  });
  if (!values.id || !values.placement) throw new Error("runner needs --id and --placement HOST:PORT (placement starts runners itself)");
  return {
    runnerId: values.id,
    placementAddress: values.placement,
    listen: values.listen!,
    gpu: values.gpu!,
    reconnectGraceMs: Number(values["reconnect-grace-ms"]),
    heartbeatMs: Number(values["heartbeat-ms"]),
    quietLogs: process.env.MODELSWAP_LOG === "silent",
  };
}
