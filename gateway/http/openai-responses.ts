import type { Done } from "../../gen/modelswap/v1/inference.js";

/** Chat (`/v1/chat/completions`) or text (`/v1/completions`): the two shapes of OpenAI's answers. */
export type CompletionKind = "chat" | "text";

/** What every object of one completion repeats. */
export interface CompletionIdentity {
  kind: CompletionKind;
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** OpenAI's name for prompt tokens served from a cache (here: the runner's prompt cache). */
  prompt_tokens_details: { cached_tokens: number };
}

/** OpenAI's finish reasons: "stop" (end of sequence or a stop string) or "length" (max_tokens). */
export function finishReasonOf(done: Done): "stop" | "length" {
  return done.finishReason === "length" ? "length" : "stop";
}

export function usageOf(done: Done): OpenAiUsage {
  const prompt = done.usage?.promptTokens ?? 0;
  const completion = done.usage?.completionTokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: done.usage?.cachedPromptTokens ?? 0 } };
}

/** modelswap's extra field on answers: where the time went, and failovers. */
export function timingsOf(done: Done) {
  const timings = done.timings;
  return {
    queue_ms: timings?.queueMs ?? 0,
    load_ms: timings?.loadMs ?? 0,
    ttft_ms: timings?.ttftMs ?? 0,
    total_ms: timings?.totalMs ?? 0,
    tokens_per_second: timings?.tokensPerSecond ?? 0,
    failovers: done.failovers,
  };
}

/** The whole answer of a request without `stream` (chat.completion or text_completion). Pure. */
export function completionObject(identity: CompletionIdentity, text: string, done: Done) {
  const finish_reason = finishReasonOf(done);
  const choice =
    identity.kind === "chat"
      ? { index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason }
      : { index: 0, text, logprobs: null, finish_reason };
  return {
    id: identity.id,
    object: identity.kind === "chat" ? "chat.completion" : "text_completion",
    created: identity.created,
    model: identity.model,
    choices: [choice],
    usage: usageOf(done),
    modelswap: timingsOf(done),
  };
}

/**
 * One streamed chunk: a piece of text (chat: `delta.content`; the first chat chunk
 * carries `delta.role`), or the last choice chunk with a finish_reason. Pure.
 */
export function chunkObject(identity: CompletionIdentity, piece: { text?: string; role?: boolean; finishReason?: string }) {
  const finish_reason = piece.finishReason ?? null;
  const choice =
    identity.kind === "chat"
      ? { index: 0, delta: { ...(piece.role ? { role: "assistant" } : {}), ...(piece.text !== undefined ? { content: piece.text } : {}) }, logprobs: null, finish_reason }
      : { index: 0, text: piece.text ?? "", logprobs: null, finish_reason };
  return { id: identity.id, object: chunkKind(identity.kind), created: identity.created, model: identity.model, choices: [choice] };
}

/** The chunk that stream_options.include_usage adds after the last choice: no choices, the usage. Pure. */
export function usageChunk(identity: CompletionIdentity, done: Done) {
  return { id: identity.id, object: chunkKind(identity.kind), created: identity.created, model: identity.model, choices: [], usage: usageOf(done), modelswap: timingsOf(done) };
}

function chunkKind(kind: CompletionKind): string {
  return kind === "chat" ? "chat.completion.chunk" : "text_completion";
}
