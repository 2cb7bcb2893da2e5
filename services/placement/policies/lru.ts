import { decideEviction } from "./decide-eviction.js";
import type { EvictionPolicy, ResidentModel } from "./eviction-policy.js";

/** LRU keeps no state of its own: recency is read from ResidentModel.lastUsedMs. */
export type LruState = null;

/** `lru`: evict the least recently used first; ties go to the lower priority, then the name. */
export const lru: EvictionPolicy<LruState> = {
  name: "lru",
  initialState: () => null,
  onAccess: (state) => state,
  onEvict: (state) => state,
  decide: (_state, request) => decideEviction(request, rankLeastRecentlyUsedFirst),
};

function rankLeastRecentlyUsedFirst(candidates: readonly ResidentModel[]): ResidentModel[] {
  return [...candidates].sort(
    (a, b) => a.lastUsedMs - b.lastUsedMs || a.priority - b.priority || a.name.localeCompare(b.name),
  );
}
