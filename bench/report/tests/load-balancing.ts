import { median } from "../../lib/report.js";
import type { RunContext } from "../run-context.js";
import type { Session } from "../session.js";
import { aggregateTokPerS } from "../streams.js";

/**
 * Test 8 (phase C, load balancing): 1, 2, 4 ... concurrent streams on one model whose config
 * lets placement add a second replica (replicas max 2) when the streams outnumber one
 * runner's sequences: aggregate tokens/s, TTFT, and where the streams ran.
 */

export interface StreamsRow {
  streams: number;
  aggregateTokPerS: number;
  ttftMsMedian: number;
  /** Ready replicas of the model when the burst ended. */
  replicas: number;
  ok: number;
}

export async function loadBalancing(session: Session, model: string, counts: readonly number[], maxTokens: number, context: RunContext): Promise<StreamsRow[]> {
  const rows: StreamsRow[] = [];
  await session.load(model);
  await session.settled();
  for (const streams of counts) {
    context.step(`test 8: ${streams} concurrent stream(s) on one model`);
    const results = await Promise.all(Array.from({ length: streams }, () => session.generate({ model, maxTokens })));
    const status = await session.status();
    rows.push({
      streams,
      aggregateTokPerS: aggregateTokPerS(results),
      ttftMsMedian: median(results.map((result) => result.ttftMs)),
      replicas: status.runners.filter((runner) => runner.models.some((hosted) => hosted.name === model && hosted.state === "ready")).length,
      ok: results.filter((result) => result.ok).length,
    });
  }
  return rows;
}
