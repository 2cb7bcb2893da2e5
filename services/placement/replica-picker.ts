/**
 * Which replica serves a new stream: filter -> score -> pick, each a small pure step.
 * Placement applies it when it grants a lease: it holds the slot counts.
 */
export interface ReplicaView {
  id: string;
  /** Streams in flight on this replica. */
  outstanding: number;
  /** Parallel sequences of its context: streams it can serve at once. */
  capacity: number;
}

/** Replicas that can take a stream now: not excluded (failed this request before) and with a free sequence. */
export function availableReplicas(replicas: readonly ReplicaView[], excluded: ReadonlySet<string>): ReplicaView[] {
  return replicas.filter((replica) => !excluded.has(replica.id) && replica.outstanding < replica.capacity);
}

/** Lower is better: outstanding streams relative to capacity (so a 4-sequence runner takes more than a 1-sequence one). */
export function loadScore(replica: ReplicaView): number {
  return replica.outstanding / replica.capacity;
}

/** Above this many candidates, compare two random ones instead of scanning all ("power of two choices"). */
export const TWO_CHOICES_ABOVE = 4;

/** Least loaded replica; ties go to the earlier one. `random` in [0, 1) is injected for tests. */
export function pickReplica(candidates: readonly ReplicaView[], random: () => number = Math.random): ReplicaView | undefined {
  if (candidates.length === 0) return undefined;
  if (candidates.length > TWO_CHOICES_ABOVE) {
    const firstIndex = Math.floor(random() * candidates.length);
    const drawn = Math.floor(random() * (candidates.length - 1));
    const secondIndex = drawn >= firstIndex ? drawn + 1 : drawn; // a different candidate, uniformly
    const first = candidates[firstIndex]!;
    const second = candidates[secondIndex]!;
    return loadScore(second) < loadScore(first) ? second : first;
  }
  let best = candidates[0]!;
  for (const candidate of candidates) if (loadScore(candidate) < loadScore(best)) best = candidate;
  return best;
}
