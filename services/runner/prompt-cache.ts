/**
 * The prompt cache's one decision: which of a model's sequences a new prompt runs on.
 *
 * A sequence keeps, between requests, the tokens its KV cache holds (the last request's prompt
 * and what it generated). A new prompt reuses the longest prefix it shares with them and
 * evaluates only the rest; at least its last token is always evaluated, because the logits of
 * that evaluation give the first new token (llama-server's `cache_prompt`, on by default there
 * too).
 */

/** A free sequence as the choice sees it. */
export interface KeptSequence {
  /** The tokens its KV cache holds, in order. */
  readonly tokens: readonly number[];
  /** When it last served a request (any monotonic clock): the oldest is overwritten first. */
  readonly lastUsed: number;
  /** False once its KV no longer matches a cold evaluation of `tokens` (after a context shift). */
  readonly reusable: boolean;
}

export type SequenceChoice =
  /** Run on free sequence `index`, keeping its first `reuse` tokens. */
  | { kind: "kept"; index: number; reuse: number }
  /** Take a sequence the context has never handed out (or has taken back). */
  | { kind: "new" };

export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const length = Math.min(a.length, b.length);
  let index = 0;
  while (index < length && a[index] === b[index]) index++;
  return index;
}

/** Tokens of `prompt` that a sequence holding `kept` does not have to evaluate again. */
function reusablePrefix(sequence: KeptSequence, prompt: readonly number[]): number {
  if (!sequence.reusable) return 0;
  return Math.max(0, Math.min(commonPrefixLength(sequence.tokens, prompt), prompt.length - 1));
}

/**
 * The free sequence that shares the longest prefix with `prompt` (the least recently used one
 * among equals). A fresh sequence, when the context has one left, wins over a kept one that
 * would reuse no more than the first token (usually just BOS): the kept one's cache stays for a
 * later request that shares more. Undefined when no sequence is free.
 */
export function chooseSequence(free: readonly KeptSequence[], prompt: readonly number[], canTakeNew: boolean): SequenceChoice | undefined {
  let best: { index: number; reuse: number; lastUsed: number } | undefined;
  free.forEach((sequence, index) => {
    const reuse = reusablePrefix(sequence, prompt);
    if (!best || reuse > best.reuse || (reuse === best.reuse && sequence.lastUsed < best.lastUsed)) best = { index, reuse, lastUsed: sequence.lastUsed };
  });
  if (canTakeNew && (!best || best.reuse <= 1)) return { kind: "new" };
  return best && { kind: "kept", index: best.index, reuse: best.reuse };
}
