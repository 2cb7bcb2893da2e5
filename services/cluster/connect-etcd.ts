import type { Etcd3 } from "etcd3";
import type { ClusterConfig } from "../../common/config/config-types.js";

/** Unary etcd calls give up after this long: routing never waits on an unreachable etcd. */
const CALL_TIMEOUT_MS = 3000;

/**
 * An etcd client for the registry (cluster.etcd); streams (watch, keepalive) have no
 * deadline. The client library is loaded here, on first use: it costs about half a second
 * of start-up that a box without `cluster` does not pay.
 */
export async function connectEtcd(cluster: Pick<ClusterConfig, "etcd">): Promise<Etcd3> {
  const { Etcd3 } = await import("etcd3");
  return new Etcd3({
    hosts: cluster.etcd,
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
}
