import type { PlacementClient } from "../../gen/modelswap/v1/placement.js";

/** The placement a request's lease is asked of: one box's. */
export interface PlacementTarget {
  /** The box's name (boxes that failed a request are excluded from its retries). */
  box: string;
  placement: PlacementClient;
}

/**
 * Chooses the placement for a model (more than one box: services/cluster). Undefined when
 * every box that could serve it is in `excludeBoxes`.
 */
export type PlacementResolver = (model: string, excludeBoxes: ReadonlySet<string>) => Promise<PlacementTarget | undefined>;
