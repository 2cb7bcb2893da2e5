import { dropFromPageCache, readWholeFile } from "../../lib/page-cache.js";
import type { RunContext } from "../run-context.js";
import type { Session } from "../session.js";

/**
 * Test 4 (phase B, large-model swap-in): the large-hot-swap scenario, where the large model and
 * the small one do not fit together. Each round requests the large model, then the small one,
 * so each request swaps the other out: once with the files in page cache, once with them
 * dropped from it (read from disk). Also the disk's plain sequential read rate.
 */

export type LoadSource = "page cache" | "disk";

export interface SwapIn {
  model: string;
  fileBytes: number;
  source: LoadSource;
  round: number;
  /** The runner's load (weights + context + warm-up), and its weights part. */
  loadMs: number;
  weightsMs: number;
  /** Client call to first token: eviction wait + load + first token. */
  ttftMs: number;
  /** Models evicted to make room for it. */
  evicted: string[];
}

export interface SwapOut {
  model: string;
  ms: number;
  cause: string;
}

export interface LargeSwapResult {
  large: string;
  small: string;
  diskReadMBps: number;
  pageCacheReadMBps: number;
  /** How files were dropped from page cache, or undefined when it could not be done here. */
  dropMethod: string | undefined;
  swapIns: SwapIn[];
  swapOuts: SwapOut[];
}

export async function largeModelSwap(
  session: Session,
  large: { name: string; path: string; fileBytes: number },
  small: { name: string; path: string; fileBytes: number },
  context: RunContext,
): Promise<LargeSwapResult> {
  context.step("test 4: the disk's sequential read rate");
  const dropMethod = dropFromPageCache(large.path);
  const coldMs = await readWholeFile(large.path);
  const warmMs = await readWholeFile(large.path);
  const mbps = (ms: number) => large.fileBytes / 1e6 / (ms / 1000);

  const swapIns: SwapIn[] = [];
  const rounds = context.quick ? 1 : 3;
  const sources: LoadSource[] = dropMethod ? ["page cache", "disk"] : ["page cache"];
  for (let round = 1; round <= rounds; round++) {
    for (const source of sources) {
      context.step(`test 4: swap-in from ${source}, round ${round} of ${rounds}`);
      for (const model of [large, small]) {
        await session.settled();
        // the model must be cold: after the other model's request it usually is (they do not fit together)
        if ((await session.residentModels()).includes(model.name)) await session.unload(model.name);
        if (source === "disk") dropFromPageCache(model.path);
        else await readWholeFile(model.path);
        const eventsBefore = session.events.length;
        const result = await session.generate({ model: model.name, maxTokens: 4 });
        const events = session.events.slice(eventsBefore);
        const loaded = events.find((event) => event.kind === "loaded" && event.model === model.name);
        const timings = loaded?.kind === "loaded" ? loaded.timings : undefined;
        swapIns.push({
          model: model.name,
          fileBytes: model.fileBytes,
          source,
          round,
          loadMs: timings?.loadMs ?? result.loadMs,
          weightsMs: timings?.modelLoadMs ?? Number.NaN,
          ttftMs: result.ttftMs,
          evicted: events.filter((event) => event.kind === "unloading" && event.reason.cause === "evicted").map((event) => ("model" in event ? event.model : "")),
        });
        if (!result.ok) throw new Error(`test 4: the request for ${model.name} failed: ${result.error}`);
      }
    }
  }
  await session.settled();
  return {
    large: large.name,
    small: small.name,
    diskReadMBps: dropMethod ? mbps(coldMs) : Number.NaN,
    pageCacheReadMBps: mbps(warmMs),
    dropMethod,
    swapIns,
    swapOuts: swapOutsOf(session),
  };
}

/** Every unload in the session: from "unloading" to "unloaded", with its cause. */
export function swapOutsOf(session: Session): SwapOut[] {
  const started = new Map<string, { t: number; cause: string }>();
  const outs: SwapOut[] = [];
  for (const event of session.events) {
    if (event.kind === "unloading") started.set(`${event.model}@${event.runnerId}`, { t: event.t, cause: event.reason.cause });
    if (event.kind === "unloaded") {
      const start = started.get(`${event.model}@${event.runnerId}`);
      if (start) outs.push({ model: event.model, ms: event.t - start.t, cause: start.cause });
    }
  }
  return outs;
}
