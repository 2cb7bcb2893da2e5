/**
 * What a box publishes about itself in the registry (etcd key `<prefix>boxes/<box>`, JSON,
 * held by the box's lease). Gateways route from these records; `ps --cluster` prints them.
 */
export interface BoxRecord {
  box: string;
  /** host:port of the box's placement, as gateways dial it. */
  address: string;
  budgetBytes: number;
  /** Budget minus every runner's own memory and the models held, loading or leaving. */
  freeBytes: number;
  /** Requests waiting in the box's queue for models to load. */
  queueDepth: number;
  /** Streams in flight on the box, over all its models. */
  inFlight: number;
  /** The box's eviction policy (lru or cost). */
  policy: string;
  /** The etcd lease (decimal) that holds this record. */
  leaseId: string;
  updatedMs: number;
  /** Every model of the box's catalog. */
  models: BoxModel[];
}

export type BoxModelState = "resident" | "loading" | "cold";

export interface BoxModel {
  name: string;
  aliases: string[];
  state: BoxModelState;
  /** Bytes one replica takes (measured, else estimated, else the file size). */
  bytes: number;
  inFlight: number;
  queued: number;
  /** For a cold model: what loading it on this box costs now. */
  load?: LoadCost;
  /** A model fetched on first use whose file is not on this box yet: being downloaded (state loading), or to be (cold). Absent: on disk. */
  file?: "downloading" | "missing";
}

/**
 * The box's own answer to "what would loading this model cost here?", from its eviction
 * policy: it fits in free memory, or it evicts victims whose reload time is the cost, or
 * nothing can make room now (the request would queue).
 */
export type LoadCost =
  | { kind: "fits"; freeAfterBytes: number }
  | { kind: "evict"; victims: string[]; reloadCostMs: number }
  | { kind: "blocked"; reason: string };

const MAX_RECORD_CHARS = 256 * 1024;
const MAX_MODELS = 1024;

/**
 * Reads a record from the registry; undefined for anything that is not a well-formed
 * record (the registry is shared: a malformed key must not break routing).
 */
export function parseBoxRecord(text: string): BoxRecord | undefined {
  if (text.length > MAX_RECORD_CHARS) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(raw)) return undefined;
  const { box, address, budgetBytes, freeBytes, queueDepth, inFlight, policy, leaseId, updatedMs, models } = raw;
  if (!isText(box) || !isText(address) || !isText(policy) || typeof leaseId !== "string") return undefined;
  if (![budgetBytes, freeBytes, queueDepth, inFlight, updatedMs].every(isNumber)) return undefined;
  if (!Array.isArray(models) || models.length > MAX_MODELS) return undefined;
  const parsed: BoxModel[] = [];
  for (const model of models) {
    const entry = parseModel(model);
    if (!entry) return undefined;
    parsed.push(entry);
  }
  return {
    box,
    address,
    budgetBytes: budgetBytes as number,
    freeBytes: freeBytes as number,
    queueDepth: queueDepth as number,
    inFlight: inFlight as number,
    policy,
    leaseId,
    updatedMs: updatedMs as number,
    models: parsed,
  };
}

function parseModel(raw: unknown): BoxModel | undefined {
  if (!isObject(raw)) return undefined;
  const { name, aliases, state, bytes, inFlight, queued, load, file } = raw;
  if (!isText(name) || !Array.isArray(aliases) || !aliases.every(isText)) return undefined;
  if (state !== "resident" && state !== "loading" && state !== "cold") return undefined;
  if (![bytes, inFlight, queued].every(isNumber)) return undefined;
  const cost = load === undefined ? undefined : parseLoadCost(load);
  if (load !== undefined && cost === undefined) return undefined;
  return {
    name,
    aliases: aliases as string[],
    state,
    bytes: bytes as number,
    inFlight: inFlight as number,
    queued: queued as number,
    ...(cost ? { load: cost } : {}),
    // An unknown value (a newer box) reads as on disk rather than dropping the box.
    ...(file === "downloading" || file === "missing" ? { file } : {}),
  };
}

function parseLoadCost(raw: unknown): LoadCost | undefined {
  if (!isObject(raw)) return undefined;
  if (raw.kind === "fits" && isNumber(raw.freeAfterBytes)) return { kind: "fits", freeAfterBytes: raw.freeAfterBytes };
  if (raw.kind === "evict" && Array.isArray(raw.victims) && raw.victims.every(isText) && isNumber(raw.reloadCostMs)) {
    return { kind: "evict", victims: raw.victims as string[], reloadCostMs: raw.reloadCostMs };
  }
  if (raw.kind === "blocked" && typeof raw.reason === "string") return { kind: "blocked", reason: raw.reason };
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function isText(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= 256;
}
function isNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}
