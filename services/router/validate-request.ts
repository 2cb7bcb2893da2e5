import { invalidArgument } from "../../common/errors.js";
import type { ChatRequest, GenerateRequest, SamplingParams } from "../../gen/modelswap/v1/inference.js";
import { SAMPLING_RANGES } from "../../common/config/sampling-defaults.js";

/** Hard limits that hold before the model is known; the model's context bounds max_tokens further. */
export const LIMITS = {
  maxTokensCeiling: 1_048_576,
  stopStrings: 8,
  stopStringBytes: 64,
  chatMessages: 256,
  /** Model names, aliases and tasks (catalog names are at most 64). */
  nameBytes: 256,
  roleBytes: 16,
} as const;

export type ValidatedInput =
  | { kind: "prompt"; prompt: string }
  | { kind: "chat"; turns: { role: string; content: string }[] };

export interface ValidatedRequest {
  /** Model name or alias, or empty when routed by task. */
  model: string;
  task: string;
  input: ValidatedInput;
  maxTokens: number;
  sampling: SamplingParams | undefined;
  resumable: boolean;
}

/** Checks a Generate request; throws INVALID_ARGUMENT saying what to fix. Pure. */
export function validateGenerate(request: GenerateRequest, maxPromptBytes: number): ValidatedRequest {
  requireTarget(request.model, request.task);
  if (request.prompt.length === 0) throw invalidArgument("prompt is empty; send the text the model should continue");
  checkPromptBytes(Buffer.byteLength(request.prompt), maxPromptBytes);
  return {
    model: request.model,
    task: request.task,
    input: { kind: "prompt", prompt: request.prompt },
    maxTokens: checkMaxTokens(request.maxTokens),
    sampling: checkSampling(request.sampling),
    resumable: request.resumable,
  };
}

/** Checks a Chat request; throws INVALID_ARGUMENT saying what to fix. Pure. */
export function validateChat(request: ChatRequest, maxPromptBytes: number): ValidatedRequest {
  requireTarget(request.model, request.task);
  if (request.messages.length === 0) throw invalidArgument("messages is empty; send at least one user message");
  if (request.messages.length > LIMITS.chatMessages) throw invalidArgument(`messages has ${request.messages.length} entries; at most ${LIMITS.chatMessages} are accepted`);
  request.messages.forEach((message, index) => {
    if (!["system", "user", "assistant"].includes(message.role)) {
      const shown = Buffer.byteLength(message.role) > LIMITS.roleBytes ? `${Buffer.byteLength(message.role)} bytes long` : `"${message.role}"`;
      throw invalidArgument(`messages[${index}].role is ${shown}; use "system", "user" or "assistant"`);
    }
  });
  if (request.messages.at(-1)!.role !== "user") throw invalidArgument("the last message must have role \"user\"");
  checkPromptBytes(request.messages.reduce((sum, message) => sum + Buffer.byteLength(message.content), 0), maxPromptBytes);
  return {
    model: request.model,
    task: request.task,
    input: { kind: "chat", turns: request.messages.map((message) => ({ role: message.role, content: message.content })) },
    maxTokens: checkMaxTokens(request.maxTokens),
    sampling: checkSampling(request.sampling),
    resumable: request.resumable,
  };
}

function requireTarget(model: string, task: string): void {
  checkName("model", model);
  checkName("task", task);
  if (!model && !task) throw invalidArgument("set model (a name from ListModels) or task (e.g. \"story\")");
}

/**
 * Bounds a model name, alias or task from a request before anything copies it into
 * lookups, errors, logs or spans. Throws INVALID_ARGUMENT. Pure.
 */
export function checkName(field: string, value: string): void {
  if (value.length > LIMITS.nameBytes || Buffer.byteLength(value) > LIMITS.nameBytes) {
    throw invalidArgument(`${field} is ${Buffer.byteLength(value)} bytes; names are at most ${LIMITS.nameBytes} bytes (ListModels shows them)`);
  }
}

function checkPromptBytes(bytes: number, maxPromptBytes: number): void {
  if (bytes > maxPromptBytes) throw invalidArgument(`prompt is ${bytes} bytes; at most ${maxPromptBytes} are accepted (max_prompt_bytes)`);
}

function checkMaxTokens(maxTokens: number): number {
  if (!Number.isInteger(maxTokens) || maxTokens <= 0 || maxTokens > LIMITS.maxTokensCeiling) {
    throw invalidArgument(`max_tokens is ${maxTokens}; set it from 1 to the model's context size`);
  }
  return maxTokens;
}

function checkSampling(sampling: SamplingParams | undefined): SamplingParams | undefined {
  if (!sampling) return undefined;
  const range = (name: string, value: number | undefined, min: number, max: number, minExclusive = false) => {
    if (value === undefined) return;
    if (!Number.isFinite(value) || value > max || (minExclusive ? value <= min : value < min)) {
      throw invalidArgument(`sampling.${name} is ${value}; use a value ${minExclusive ? "above" : "from"} ${min} ${minExclusive ? "up to" : "to"} ${max}`);
    }
  };
  range("temperature", sampling.temperature, SAMPLING_RANGES.temperature.min, SAMPLING_RANGES.temperature.max);
  range("top_k", sampling.topK, 0, 1000);
  range("top_p", sampling.topP, SAMPLING_RANGES.topP.min, SAMPLING_RANGES.topP.max, true);
  range("min_p", sampling.minP, SAMPLING_RANGES.minP.min, SAMPLING_RANGES.minP.max);
  range("repeat_penalty", sampling.repeatPenalty, SAMPLING_RANGES.repeatPenalty.min, SAMPLING_RANGES.repeatPenalty.max);
  if (sampling.topK !== undefined && !Number.isInteger(sampling.topK)) throw invalidArgument("sampling.top_k must be a whole number");
  if (sampling.stop.length > LIMITS.stopStrings) throw invalidArgument(`sampling.stop has ${sampling.stop.length} strings; at most ${LIMITS.stopStrings}`);
  sampling.stop.forEach((stop, index) => {
    if (stop.length === 0 || Buffer.byteLength(stop) > LIMITS.stopStringBytes) {
      throw invalidArgument(`sampling.stop[${index}] must be 1 to ${LIMITS.stopStringBytes} bytes`);
    }
  });
  return sampling;
}
