import type { ClusterConfig } from "../../common/config/config-types.js";
import type { Logger } from "../../common/logger.js";
import type { PlacementView } from "../placement/placement-actions.js";
import { BoxRegistration } from "./box-registration.js";
import { connectEtcd } from "./connect-etcd.js";
import { describeBox } from "./describe-box.js";

export interface RegisteredBox {
  /** A residency event happened: the record is published again (debounced). */
  changed(): void;
  /** Leaves the registry and closes the etcd client. */
  stop(): Promise<void>;
}

/**
 * Registers this placement's box in etcd (cluster config) and keeps its record current.
 * `address` is where placement listens; cluster.advertise overrides it for other boxes.
 */
export async function registerBox(cluster: ClusterConfig, view: PlacementView, address: string, logger: Logger): Promise<RegisteredBox> {
  const etcd = await connectEtcd(cluster);
  const identity = { box: cluster.box, address: cluster.advertise ?? address };
  const registration = new BoxRegistration({ etcd, cluster, logger, describe: (leaseId) => describeBox(view, { ...identity, leaseId }) });
  return {
    changed: () => registration.changed(),
    stop: async () => {
      await registration.stop();
      etcd.close();
    },
  };
}
