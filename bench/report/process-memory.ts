import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { pssBytes, vmRssBytes } from "../lib/process-tree.js";

/** What runner processes hold, from /proc and (where there is one) nvidia-smi. */


/** GPU memory each process holds (nvidia-smi --query-compute-apps), or undefined without a discrete NVIDIA GPU. */
export function gpuBytesByPid(): Map<number, number> | undefined {
  if (!existsSync("/dev/nvidiactl")) return undefined;
  const out = spawnSync("nvidia-smi", ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], { encoding: "utf8", timeout: 10_000 });
  if (out.status !== 0) return undefined;
  const byPid = new Map<number, number>();
  for (const line of out.stdout.trim().split("\n").filter(Boolean)) {
    const [pid, mib] = line.split(",").map((part) => Number(part.trim()));
    if (Number.isFinite(pid) && Number.isFinite(mib)) byPid.set(pid!, (byPid.get(pid!) ?? 0) + mib! * 1024 ** 2);
  }
  return byPid;
}

/** The runner processes that host models (spares left out), and what they and their models hold. */
export interface RunnersMemory {
  runners: number;
  models: number;
  rssBytes: number;
  pssBytes: number;
  /** Sum of the hosted models' measured footprints (what placement charges for the models). */
  modelBytes: number;
  /** GPU memory of these processes (nvidia-smi); undefined without one. */
  gpuBytes: number | undefined;
  /** Each runner's own memory as placement charges it (RSS with no model). */
  baseBytes: number;
}

export function runnersMemory(status: StatusResponse): RunnersMemory {
  const hosting = status.runners.filter((runner) => runner.models.length > 0 && runner.pid > 0);
  const measured = new Map(status.models.map((entry) => [entry.info!.name, entry.info!.measuredBytes || entry.info!.estimatedBytes]));
  const gpu = gpuBytesByPid();
  return {
    runners: hosting.length,
    models: hosting.reduce((sum, runner) => sum + runner.models.length, 0),
    rssBytes: hosting.reduce((sum, runner) => sum + vmRssBytes(runner.pid), 0),
    pssBytes: hosting.reduce((sum, runner) => sum + pssBytes(runner.pid), 0),
    modelBytes: hosting.reduce((sum, runner) => sum + runner.models.reduce((inner, hosted) => inner + (measured.get(hosted.name) ?? 0), 0), 0),
    gpuBytes: gpu ? hosting.reduce((sum, runner) => sum + (gpu.get(runner.pid) ?? 0), 0) : undefined,
    baseBytes: hosting.reduce((sum, runner) => sum + runner.baseBytes, 0),
  };
}
