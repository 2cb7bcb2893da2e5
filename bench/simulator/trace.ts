import { gamma, geometric, seededRandom, shuffled, weightedIndex } from "./random.js";

export interface ModelSpec {
  name: string;
  bytes: number;
  priority: number;
}

export interface TraceRequest {
  atMs: number;
  model: string;
}

/** Requests are served one at a time, in order; each needs its model resident. */
export interface Trace {
  models: ModelSpec[];
  requests: TraceRequest[];
}

export interface TraceOptions {
  seed: number;
  models: number;
  requests: number;
  minBytes: number;
  maxBytes: number;
  /** Zipf exponent s: popularity of the k-th most popular model ∝ 1 / k^s. */
  zipfS: number;
  /** Gamma shape of inter-arrival gaps; < 1 makes arrivals bursty. */
  gapShape: number;
  meanGapMs: number;
  /** Mean length of a burst of requests for the same model (geometric). */
  meanBurstLength: number;
}

export const defaultTraceOptions: TraceOptions = {
  seed: 1,
  models: 8,
  requests: 2000,
  minBytes: 50e6,
  maxBytes: 2e9,
  zipfS: 1,
  gapShape: 0.4,
  meanGapMs: 2000,
  meanBurstLength: 3,
};

/**
 * A seeded synthetic trace: model sizes log-uniform in [minBytes, maxBytes]; popularity
 * Zipf(s) with ranks assigned independently of size; bursts of one model whose length is
 * geometric; every gap between requests Gamma(gapShape) with mean meanGapMs.
 */
export function syntheticTrace(options: TraceOptions): Trace {
  const random = seededRandom(options.seed);
  const models: ModelSpec[] = [];
  const logMin = Math.log(options.minBytes);
  const logMax = Math.log(options.maxBytes);
  for (let i = 0; i < options.models; i++) {
    const bytes = Math.round(Math.exp(logMin + random() * (logMax - logMin)));
    models.push({ name: `m${i}`, bytes, priority: 0 });
  }
  const byPopularity = shuffled(random, models);
  const weights = byPopularity.map((_, rank) => 1 / Math.pow(rank + 1, options.zipfS));

  const requests: TraceRequest[] = [];
  let atMs = 0;
  while (requests.length < options.requests) {
    const model = byPopularity[weightedIndex(random, weights)]!.name;
    const burst = geometric(random, options.meanBurstLength);
    for (let i = 0; i < burst && requests.length < options.requests; i++) {
      atMs += gamma(random, options.gapShape, options.meanGapMs / options.gapShape);
      requests.push({ atMs, model });
    }
  }
  return { models, requests };
}
