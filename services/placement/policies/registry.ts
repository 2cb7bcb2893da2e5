import type { EvictionPolicy } from "./eviction-policy.js";
import { cost } from "./gdsf.js";
import { lru } from "./lru.js";

/** A policy whose state type is opaque to its caller, who only threads it through. */
export type AnyEvictionPolicy = EvictionPolicy<unknown>;

const policies: Readonly<Record<string, AnyEvictionPolicy>> = { lru, cost };

export const knownPolicyNames: readonly string[] = Object.keys(policies);

/** The policy named in config; throws an Error naming the known policies otherwise. */
export function policyByName(name: string): AnyEvictionPolicy {
  const policy = Object.hasOwn(policies, name) ? policies[name] : undefined;
  if (policy === undefined) {
    throw new Error(`unknown eviction policy "${name}"; known policies: ${knownPolicyNames.join(", ")}`);
  }
  return policy;
}
