import type { Etcd3 } from "etcd3";
import { registryKeys } from "./registry-keys.js";

const CLAIM_TIMEOUT_MS = 1000;

export interface LoadClaim {
  /** The box that loads the model. */
  box: string;
  /** True when this call made the claim; false when another gateway's claim stood. */
  won: boolean;
}

/**
 * Decides in etcd which box loads a cold model, so that gateways asked for it at once
 * trigger one load: the key `<prefix>load/<model>` is created in a transaction, held by a
 * short lease (it only has to outlive the moment before the box's record says "loading").
 * The first creator's box loads; the others get that box. A claim naming a box that is
 * gone or excluded (`usable` false) is replaced, again in a transaction.
 */
export async function claimLoad(
  etcd: Etcd3,
  prefix: string,
  model: string,
  box: string,
  usable: (box: string) => boolean,
  ttlSeconds: number,
): Promise<LoadClaim> {
  const key = registryKeys.load(prefix, model);
  // A request waits on this decision: an unreachable etcd costs it at most CLAIM_TIMEOUT_MS (then it loads where chosen).
  const deadline = Date.now() + CLAIM_TIMEOUT_MS;
  const lease = etcd.lease(ttlSeconds, { autoKeepAlive: false, deadline });
  const leaseId = await lease.grant();
  const created = await etcd.if(key, "Create", "==", 0).then(etcd.put(key).value(box).lease(leaseId)).else(etcd.get(key)).options({ deadline }).commit();
  if (created.succeeded) return { box, won: true };
  const existing = created.responses[0]?.response_range?.kvs[0];
  if (!existing) return { box, won: false }; // the claim expired between the compare and the read: load where chosen
  const holder = existing.value.toString("utf8");
  if (usable(holder)) return { box: holder, won: false };
  // The holder is gone or failed this request: replace its claim unless someone else did first.
  const replaced = await etcd
    .if(key, "Mod", "==", Number(existing.mod_revision))
    .then(etcd.put(key).value(box).lease(leaseId))
    .else(etcd.get(key))
    .options({ deadline })
    .commit();
  if (replaced.succeeded) return { box, won: true };
  const latest = replaced.responses[0]?.response_range?.kvs[0]?.value.toString("utf8");
  return latest !== undefined && usable(latest) ? { box: latest, won: false } : { box, won: false };
}
