import { median } from "../../lib/report.js";
import type { RunContext } from "../run-context.js";
import type { Session } from "../session.js";
import { aggregateTokPerS, decodeTokPerS } from "../streams.js";

/**
 * Test 7 (phase C, multi-task serving): requests name a task, not a model; the scenario's
 * routes and tasks pick the model. Requests for every task at once, with every model resident:
 * which model served each task, how fast, and whether any request waited for a swap.
 * Also each model alone and warm (resident, one stream): TTFT and decode rate by model size
 * (question 7).
 */

export interface TaskRow {
  task: string;
  servedBy: string[];
  ttftMsMedian: number;
  ok: number;
  requests: number;
  swapped: number;
}

export interface WarmRow {
  model: string;
  paramsB: number;
  fileBytes: number;
  ttftMs: number[];
  decodeTokPerS: number[];
}

export interface MultiTaskResult {
  tasks: TaskRow[];
  aggregateTokPerS: number;
  loadsDuring: number;
}

export async function multiTask(session: Session, tasks: readonly string[], models: readonly string[], context: RunContext): Promise<MultiTaskResult> {
  context.step("test 7: requests by task, every task at once");
  for (const model of models) await session.load(model);
  await session.settled();
  const perTask = context.quick ? 1 : 3;
  const eventsBefore = session.events.length;
  const requests = tasks.flatMap((task) => Array.from({ length: perTask }, () => ({ task })));
  const results = await Promise.all(requests.map(({ task }) => session.generate({ task, maxTokens: context.quick ? 8 : 32 })));
  const rows = tasks.map((task) => {
    const mine = results.filter((_, i) => requests[i]!.task === task);
    return {
      task,
      servedBy: [...new Set(mine.map((result) => result.servedBy || "-"))],
      ttftMsMedian: median(mine.map((result) => result.ttftMs)),
      ok: mine.filter((result) => result.ok).length,
      requests: mine.length,
      swapped: mine.filter((result) => result.loadMs > 0).length,
    };
  });
  return {
    tasks: rows,
    aggregateTokPerS: aggregateTokPerS(results),
    loadsDuring: session.events.slice(eventsBefore).filter((event) => event.kind === "loading").length,
  };
}

/** Each model resident and alone: `rounds` requests of `maxTokens`, one at a time. */
export async function warmByModel(
  session: Session,
  models: readonly { name: string; paramsB: number; fileBytes: number }[],
  maxTokens: number,
  context: RunContext,
): Promise<WarmRow[]> {
  context.step(`question 7: ${models.map((model) => model.name).join(", ")} warm, one at a time`);
  const rows: WarmRow[] = [];
  const rounds = context.quick ? 1 : 3;
  for (const model of models) {
    await session.load(model.name);
    await session.settled();
    await session.generate({ model: model.name, maxTokens: 2 }); // first request after a load pays for nothing the next ones do not
    const row: WarmRow = { model: model.name, paramsB: model.paramsB, fileBytes: model.fileBytes, ttftMs: [], decodeTokPerS: [] };
    for (let round = 0; round < rounds; round++) {
      const result = await session.generate({ model: model.name, maxTokens });
      row.ttftMs.push(result.ttftMs);
      // the server's count: forged models' byte tokens often make no complete character, so text pieces are fewer than tokens
      row.decodeTokPerS.push(result.tokensPerSecond > 0 ? result.tokensPerSecond : decodeTokPerS(result));
    }
    rows.push(row);
  }
  return rows;
}
