import type { StreamResult } from "./session.js";

/** Figures over streams that ran together. */

/** All tokens over the wall time from the first call to the last token, per second. */
export function aggregateTokPerS(results: readonly StreamResult[]): number {
  const started = Math.min(...results.map((result) => result.startedAt));
  const ended = Math.max(...results.map((result) => result.tokenTimes.at(-1) ?? result.startedAt));
  const tokens = results.reduce((sum, result) => sum + result.tokens, 0);
  return ended > started ? tokens / ((ended - started) / 1000) : Number.NaN;
}

/** Tokens after the first over the time from the first token to the last, per second. */
export function decodeTokPerS(result: StreamResult): number {
  const first = result.tokenTimes[0];
  const last = result.tokenTimes.at(-1);
  if (first === undefined || last === undefined || last <= first) return Number.NaN;
  return (result.tokens - (result.tokenCounts[0] ?? 1)) / ((last - first) / 1000);
}

export const finite = (values: readonly number[]) => values.filter(Number.isFinite);
export const mean = (values: readonly number[]) => {
  const ok = finite(values);
  return ok.length === 0 ? Number.NaN : ok.reduce((sum, value) => sum + value, 0) / ok.length;
};
