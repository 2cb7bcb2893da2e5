import { decideEviction } from "./decide-eviction.js";
import type { AccessedModel, EvictionPolicy, ResidentModel } from "./eviction-policy.js";

/** What `cost` remembers about one model; kept after eviction so popularity survives swaps. */
export interface GdsfEntry {
  /** Access count aged by the half-life, as of the model's last access. */
  readonly frequency: number;
  /** GdsfState.accesses at the model's last access. */
  readonly lastAccess: number;
  /** While resident: the clock at its last access and its H then; undefined once evicted. */
  readonly resident: { readonly clockAtAccess: number; readonly value: number } | undefined;
}

export interface GdsfState {
  /** Inflation value L: never decreases; rises to the H of evicted victims. */
  readonly clock: number;
  /** Accesses to any model so far: the time base of frequency ageing. */
  readonly accesses: number;
  /** One entry per model ever accessed (bounded by the catalog). */
  readonly entries: ReadonlyMap<string, GdsfEntry>;
}

export interface GdsfOptions {
  /**
   * Frequency halves after this many accesses (to any model); Infinity = never ages.
   * Keeping frequency across evictions but ageing it lets a model that used to be
   * popular lose its claim instead of holding memory forever.
   */
  frequencyHalfLifeAccesses: number;
}

export const defaultGdsfOptions: GdsfOptions = { frequencyHalfLifeAccesses: 1000 };

/**
 * GreedyDual-Size-Frequency. H(m) = clockAtAccess(m) + frequency(m) × 2^priority(m) ×
 * reloadCostMs(m) ÷ bytes(m); evict the lowest H first (ties: least recently used).
 * The clock rises to the highest H among the victims, which ages every model not used
 * since. decide() recomputes H from the live (measured) figures in the request; a
 * resident model it has never seen counts as accessed at the current clock with
 * frequency max(1, useCount).
 */
export function createCostPolicy(options: GdsfOptions = defaultGdsfOptions): EvictionPolicy<GdsfState> {
  const halfLife = options.frequencyHalfLifeAccesses;
  if (!(halfLife > 0)) throw new Error(`frequencyHalfLifeAccesses must be > 0, got ${halfLife}`);

  return {
    name: "cost",
    initialState: () => ({ clock: 0, accesses: 0, entries: new Map() }),
    onAccess: (state, model, _nowMs) => {
      const accesses = state.accesses + 1;
      const previous = state.entries.get(model.name);
      const aged = previous === undefined ? 0 : previous.frequency * 2 ** (-(accesses - previous.lastAccess) / halfLife);
      const frequency = aged + 1;
      const entry: GdsfEntry = {
        frequency,
        lastAccess: accesses,
        resident: { clockAtAccess: state.clock, value: state.clock + frequency * valueDensity(model) },
      };
      return { clock: state.clock, accesses, entries: new Map(state.entries).set(model.name, entry) };
    },
    onEvict: (state, victims) => {
      let clock = state.clock;
      const entries = new Map(state.entries);
      for (const victim of victims) {
        const entry = entries.get(victim);
        if (entry === undefined) continue;
        if (entry.resident !== undefined) clock = Math.max(clock, entry.resident.value);
        entries.set(victim, { ...entry, resident: undefined });
      }
      return { clock, accesses: state.accesses, entries };
    },
    decide: (state, request) =>
      decideEviction(request, (candidates) => rankLowestValueFirst(state, candidates)),
  };
}

/** `cost` as named in config, with the default options. */
export const cost: EvictionPolicy<GdsfState> = createCostPolicy();

function rankLowestValueFirst(state: GdsfState, candidates: readonly ResidentModel[]): ResidentModel[] {
  const valued = candidates.map((model) => ({ model, value: currentValue(state, model) }));
  valued.sort(
    (a, b) =>
      a.value - b.value || a.model.lastUsedMs - b.model.lastUsedMs || a.model.name.localeCompare(b.model.name),
  );
  return valued.map(({ model }) => model);
}

function currentValue(state: GdsfState, model: ResidentModel): number {
  const entry = state.entries.get(model.name);
  if (entry?.resident === undefined) return state.clock + Math.max(1, model.useCount) * valueDensity(model);
  return entry.resident.clockAtAccess + entry.frequency * valueDensity(model);
}

/**
 * Reload cost per byte (host and GPU memory together), weighted by priority: what one access
 * of the model is worth.
 */
function valueDensity(model: AccessedModel | ResidentModel): number {
  const priority = Math.max(-10, Math.min(10, model.priority ?? 0));
  return (2 ** priority * model.reloadCostMs) / Math.max(1, model.bytes + (model.gpuBytes ?? 0));
}
