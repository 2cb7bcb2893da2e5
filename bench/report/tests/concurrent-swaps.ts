import { seededRandom, shuffled } from "../../simulator/random.js";
import type { RunContext } from "../run-context.js";
import type { MemorySample, Session, StreamResult } from "../session.js";

/**
 * Test 5 (phase B, concurrent swaps): a seeded trace of bursts of concurrent requests with Zipf
 * popularity over more models than the budget holds, memory sampled throughout; then bursts of
 * requests for cold models at once: different models, and one model (the load is shared).
 */

export interface TraceRequest {
  model: string;
  burst: number;
  ok: boolean;
  error: string;
  ttftMs: number;
  /** The request waited for its model to load (Done.timings.load_ms > 0). */
  swapped: boolean;
  loadMs: number;
  /** Session time of the call. */
  t: number;
}

export interface ResidencyInterval {
  model: string;
  state: "loading" | "resident" | "unloading";
  start: number;
  end: number;
}

export interface ColdBurst {
  kind: "different models" | "one model";
  models: string[];
  ttftMs: number[];
  ok: number;
  /** Loads placement started for these requests. */
  loads: number;
  wallMs: number;
}

export interface ConcurrentSwapsResult {
  requests: TraceRequest[];
  samples: MemorySample[];
  intervals: ResidencyInterval[];
  traceStart: number;
  traceEnd: number;
  loads: number;
  evictions: number;
  budgetBytes: number;
  bursts: ColdBurst[];
}

export async function concurrentSwaps(session: Session, models: readonly string[], context: RunContext): Promise<ConcurrentSwapsResult> {
  context.step("test 5: a trace of concurrent bursts over more models than fit");
  const random = seededRandom(context.seed);
  const order = shuffled(random, models);
  const weights = order.map((_, rank) => 1 / (rank + 1));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const pick = () => {
    let x = random() * total;
    for (let i = 0; i < order.length; i++) if ((x -= weights[i]!) <= 0) return order[i]!;
    return order.at(-1)!;
  };
  const requestCount = context.quick ? 12 : 60;
  const bursts: string[][] = [];
  for (let count = 0; count < requestCount; ) {
    const size = Math.min(requestCount - count, 1 + Math.floor(random() * 3));
    bursts.push(Array.from({ length: size }, pick));
    count += size;
  }
  await session.settled();
  const residentAtStart = await session.residentModels();
  const eventsBefore = session.events.length;
  session.startSampling(context.quick ? 100 : 200);
  const traceStart = session.now();
  const requests: TraceRequest[] = [];
  for (const [index, burst] of bursts.entries()) {
    const t = session.now();
    const results = await Promise.all(burst.map((model) => session.generate({ model, maxTokens: 1 + Math.floor(random() * 8) })));
    requests.push(...results.map((result, i) => toRequest(burst[i]!, index, t, result)));
  }
  const traceEnd = session.now();
  await session.settled();
  const traceEvents = session.events.slice(eventsBefore);

  context.step("test 5: cold models requested at once");
  const coldBursts: ColdBurst[] = [];
  const resident = await session.residentModels();
  const cold = models.filter((model) => !resident.includes(model)).slice(0, 3);
  if (cold.length >= 2) coldBursts.push(await coldBurst(session, "different models", cold));
  const one = cold[0] ?? models[0]!;
  if ((await session.residentModels()).includes(one)) await session.unload(one);
  coldBursts.push(await coldBurst(session, "one model", [one, one, one]));

  return {
    requests,
    samples: session.samples.filter((sample) => sample.t >= traceStart && sample.t <= traceEnd + 500),
    intervals: residencyIntervals(traceEvents, traceStart, traceEnd, residentAtStart),
    traceStart,
    traceEnd,
    loads: traceEvents.filter((event) => event.kind === "loaded").length,
    evictions: traceEvents.filter((event) => event.kind === "unloading" && event.reason.cause === "evicted").length,
    budgetBytes: (await session.status()).budgetBytes,
    bursts: coldBursts,
  };
}

function toRequest(model: string, burst: number, t: number, result: StreamResult): TraceRequest {
  return { model, burst, ok: result.ok, error: result.error, ttftMs: result.ttftMs, swapped: result.loadMs > 0, loadMs: result.loadMs, t };
}

async function coldBurst(session: Session, kind: ColdBurst["kind"], models: string[]): Promise<ColdBurst> {
  await session.settled();
  const eventsBefore = session.events.length;
  const started = performance.now();
  const results = await Promise.all(models.map((model) => session.generate({ model, maxTokens: 4 })));
  return {
    kind,
    models,
    ttftMs: results.map((result) => result.ttftMs),
    ok: results.filter((result) => result.ok).length,
    loads: session.events.slice(eventsBefore).filter((event) => event.kind === "loading").length,
    wallMs: performance.now() - started,
  };
}

/** Loading / resident / unloading spans per model from residency events, clipped to the trace. */
export function residencyIntervals(
  events: readonly { kind: string; t: number; model?: string }[],
  start: number,
  end: number,
  residentAtStart: readonly string[],
): ResidencyInterval[] {
  const open = new Map<string, { state: ResidencyInterval["state"]; start: number }>(residentAtStart.map((model) => [model, { state: "resident", start }]));
  const intervals: ResidencyInterval[] = [];
  const close = (model: string, at: number) => {
    const current = open.get(model);
    if (current) intervals.push({ model, state: current.state, start: Math.max(start, current.start), end: at });
    open.delete(model);
  };
  for (const event of events) {
    const model = event.model;
    if (!model) continue;
    if (event.kind === "loading") {
      close(model, event.t);
      open.set(model, { state: "loading", start: event.t });
    } else if (event.kind === "loaded") {
      close(model, event.t);
      open.set(model, { state: "resident", start: event.t });
    } else if (event.kind === "unloading") {
      close(model, event.t);
      open.set(model, { state: "unloading", start: event.t });
    } else if (event.kind === "unloaded" || event.kind === "load_failed") {
      close(model, event.t);
    }
  }
  for (const model of [...open.keys()]) close(model, end);
  return intervals.filter((interval) => interval.end > interval.start);
}
