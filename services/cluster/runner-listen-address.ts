import type { Config } from "../../common/config/config-types.js";

/**
 * Where runners listen for token streams. One box: loopback (the runner's default). More
 * than one box: gateways on other boxes stream from the runners directly, so runners
 * listen on the host this box advertises (cluster.advertise, else placement.listen's
 * host), on a free port each. Pure.
 */
export function runnerListenAddress(config: Pick<Config, "cluster" | "placement">): string | undefined {
  if (!config.cluster) return undefined;
  const advertised = config.cluster.advertise ?? config.placement.listen;
  if (advertised.startsWith("unix:")) return undefined;
  const host = advertised.replace(/:\d+$/, "");
  return `${host}:0`;
}
