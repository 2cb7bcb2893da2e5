import { dropFromPageCache } from "../../lib/page-cache.js";
import type { RunContext } from "../run-context.js";
import { epochNow, type Session, type StreamResult } from "../session.js";

/**
 * Test 6 (phase B, swap while serving): a small model streams (one request after another)
 * while a large model loads, its file dropped from page cache first so that it comes from
 * disk. Token times against the load's start and end: does the stream stall?
 */

export interface SwapWhileServingResult {
  streamed: string;
  loaded: string;
  /** The large model's file was dropped from page cache before the load. */
  fromDisk: boolean;
  /** Session time (ms) of the load's start and end (placement's loading/loaded events). */
  loadStart: number;
  loadEnd: number;
  /** Every token message of the small model's streams: session time and tokens so far. */
  tokens: { t: number; cumulative: number }[];
  tokPerSBefore: number;
  tokPerSDuring: number;
  tokPerSAfter: number;
  /** Longest time between two token messages during the load (a new request's TTFT counts as one gap). */
  maxGapDuringMs: number;
  maxGapBeforeMs: number;
  failed: number;
}

export async function swapWhileServing(session: Session, streamed: string, loaded: string, loadedPath: string, maxTokens: number, context: RunContext): Promise<SwapWhileServingResult> {
  context.step("test 6: a small model streams while a large one loads");
  await session.load(streamed);
  if ((await session.residentModels()).includes(loaded)) await session.unload(loaded);
  await session.settled();
  const fromDisk = dropFromPageCache(loadedPath) !== undefined;

  const results: StreamResult[] = [];
  let stop = false;
  let live = 0;
  const streaming = (async () => {
    while (!stop) results.push(await session.generate({ model: streamed, maxTokens, onToken: () => live++ }));
  })();
  let loadStartEpoch = 0;
  let loadEndEpoch = 0;
  let quietStart = 0;
  let stopAt = 0;
  const quietMs = context.quick ? 500 : 1500;
  try {
    // the stream warms up (5 token messages), runs alone for a while, then the load starts
    await session.waitUntil(async () => live >= 5 || results.some((result) => !result.ok), 60_000, "the stream to start");
    quietStart = epochNow();
    await session.waitUntil(async () => epochNow() - quietStart >= quietMs, quietMs + 5000, "a stretch of the stream alone");
    const eventsBefore = session.events.length;
    await session.load(loaded);
    const loadEvents = session.events.slice(eventsBefore).filter((event) => "model" in event && event.model === loaded);
    loadStartEpoch = loadEvents.find((event) => event.kind === "loading")?.timeMs ?? quietStart;
    loadEndEpoch = loadEvents.find((event) => event.kind === "loaded")?.timeMs ?? epochNow();
    stopAt = epochNow() + quietMs;
    await session.waitUntil(async () => epochNow() > stopAt, quietMs + 5000, "the stream after the load");
  } finally {
    stop = true;
    await streaming;
  }
  const failures = results.filter((result) => !result.ok);
  if (live === 0) throw new Error(`test 6: ${streamed} sent no tokens${failures[0] ? `: ${failures[0].error}` : ""}`);

  const times: number[] = [];
  const counts: number[] = [];
  for (const result of results) {
    times.push(...result.tokenTimes);
    counts.push(...result.tokenCounts);
  }
  let cumulative = 0;
  const tokens = times.map((time, i) => ({ t: time - session.startedAtMs, cumulative: (cumulative += counts[i]!) }));
  const rate = (from: number, to: number) => {
    const inside = times.map((time, i) => (time >= from && time < to ? counts[i]! : 0)).reduce((sum, count) => sum + count, 0);
    return to > from ? inside / ((to - from) / 1000) : Number.NaN;
  };
  const maxGap = (from: number, to: number) => {
    let gap = 0;
    for (let i = 1; i < times.length; i++) if (times[i]! > from && times[i - 1]! < to) gap = Math.max(gap, times[i]! - times[i - 1]!);
    return gap;
  };
  return {
    streamed,
    loaded,
    fromDisk,
    loadStart: loadStartEpoch - session.startedAtMs,
    loadEnd: loadEndEpoch - session.startedAtMs,
    tokens,
    tokPerSBefore: rate(quietStart, loadStartEpoch),
    tokPerSDuring: rate(loadStartEpoch, loadEndEpoch),
    tokPerSAfter: rate(loadEndEpoch, stopAt),
    maxGapDuringMs: maxGap(loadStartEpoch, loadEndEpoch),
    maxGapBeforeMs: maxGap(quietStart, loadStartEpoch),
    failed: results.filter((result) => !result.ok).length,
  };
}
