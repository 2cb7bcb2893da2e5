import { invalidArgument } from "../../common/errors.js";
import type { ChatMessage, ChatRequest, GenerateRequest, SamplingParams } from "../../gen/modelswap/v1/inference.js";

/** max_tokens when a request leaves it out (OpenAI's default is "as many as fit"; ours is bounded). */
export const DEFAULT_MAX_TOKENS = 256;

/** An OpenAI request in modelswap's terms; the router's own validation (validateChat / validateGenerate) follows. */
export interface OpenAiCall<Request> {
  request: Request;
  stream: boolean;
  /** stream_options.include_usage: a last chunk carries the usage. */
  includeUsage: boolean;
}

type Body = Record<string, unknown>;

/** POST /v1/chat/completions body -> ChatRequest. Throws INVALID_ARGUMENT naming the field. Pure. */
export function chatCompletionRequest(raw: unknown): OpenAiCall<ChatRequest> {
  const body = requestBody(raw);
  refuseUnsupported(body);
  const messagesRaw = body.messages;
  if (!Array.isArray(messagesRaw) || messagesRaw.length === 0) throw invalidArgument("messages must be a non-empty array of {role, content}");
  const messages = messagesRaw.map((item, index) => chatMessage(item, `messages[${index}]`));
  return {
    request: { ...target(body), messages, maxTokens: maxTokens(body), sampling: sampling(body), resumable: true },
    ...streaming(body),
  };
}

/** POST /v1/completions body -> GenerateRequest. Throws INVALID_ARGUMENT naming the field. Pure. */
export function completionRequest(raw: unknown): OpenAiCall<GenerateRequest> {
  const body = requestBody(raw);
  refuseUnsupported(body);
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1) prompt = prompt[0];
  if (typeof prompt !== "string") throw invalidArgument("prompt must be a string (one prompt per request; token arrays are not supported)");
  if (body.echo === true) throw invalidArgument("echo is not supported; prepend the prompt yourself");
  if (body.suffix !== undefined && body.suffix !== null && body.suffix !== "") throw invalidArgument("suffix is not supported");
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) throw invalidArgument("best_of must be 1");
  return {
    request: { ...target(body), prompt, maxTokens: maxTokens(body), sampling: sampling(body), resumable: true },
    ...streaming(body),
  };
}

function requestBody(raw: unknown): Body {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalidArgument("the body must be a JSON object (Content-Type: application/json)");
  return raw as Body;
}

/** model (a catalog name or alias) or, as an extension, task. */
function target(body: Body): { model: string; task: string } {
  const model = optional(body, "model", "string") ?? "";
  const task = optional(body, "task", "string") ?? "";
  if (!model && !task) throw invalidArgument("model is required: a model id from GET /v1/models (or set task, e.g. \"story\")");
  return { model, task };
}

function chatMessage(raw: unknown, at: string): ChatMessage {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalidArgument(`${at} must be an object {role, content}`);
  const message = raw as Body;
  if (typeof message.role !== "string") throw invalidArgument(`${at}.role must be a string: "system", "user" or "assistant"`);
  const role = message.role === "developer" ? "system" : message.role;
  if (role === "tool" || role === "function") throw invalidArgument(`${at}.role "${role}": tool calls are not supported`);
  return { role, content: content(message.content, `${at}.content`) };
}

/** A string, null (empty), or an array of text parts. */
function content(raw: unknown, at: string): string {
  if (raw === null || raw === undefined) return "";
  if (typeof raw === "string") return raw;
  if (!Array.isArray(raw)) throw invalidArgument(`${at} must be a string or an array of {type: "text", text} parts`);
  return raw
    .map((part, index) => {
      const p = part as Body | null;
      if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
        throw invalidArgument(`${at}[${index}] must be {type: "text", text: "..."}; only text content is supported`);
      }
      return p.text;
    })
    .join("");
}

function maxTokens(body: Body): number {
  const value = optional(body, "max_completion_tokens", "number") ?? optional(body, "max_tokens", "number") ?? DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(value)) throw invalidArgument(`max_tokens must be a whole number (got ${value})`);
  return value;
}

function sampling(body: Body): SamplingParams {
  const seed = optional(body, "seed", "number");
  if (seed !== undefined && (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff)) throw invalidArgument(`seed must be a whole number from 0 to 4294967295 (got ${seed})`);
  return {
    temperature: optional(body, "temperature", "number"),
    topP: optional(body, "top_p", "number"),
    seed,
    stop: stop(body.stop),
    // llama.cpp server's extensions, under the same names.
    topK: optional(body, "top_k", "number"),
    minP: optional(body, "min_p", "number"),
    repeatPenalty: optional(body, "repeat_penalty", "number"),
    ignoreEos: optional(body, "ignore_eos", "boolean"),
  };
}

function stop(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (typeof raw === "string") return [raw];
  if (Array.isArray(raw) && raw.every((item) => typeof item === "string")) return raw as string[];
  throw invalidArgument("stop must be a string or an array of strings");
}

function streaming(body: Body): { stream: boolean; includeUsage: boolean } {
  const stream = optional(body, "stream", "boolean") ?? false;
  const options = body.stream_options;
  if (options === undefined || options === null) return { stream, includeUsage: false };
  if (typeof options !== "object" || Array.isArray(options)) throw invalidArgument("stream_options must be an object like {include_usage: true}");
  return { stream, includeUsage: optional(options as Body, "include_usage", "boolean", "stream_options.") ?? false };
}

/** OpenAI features modelswap does not have are refused rather than silently ignored. */
function refuseUnsupported(body: Body): void {
  const n = body.n;
  if (n !== undefined && n !== null && n !== 1) throw invalidArgument("n must be 1: one choice per request");
  for (const field of ["tools", "functions"]) {
    const value = body[field];
    if (Array.isArray(value) ? value.length > 0 : value !== undefined && value !== null) throw invalidArgument(`${field} are not supported`);
  }
  if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false && body.logprobs !== 0) throw invalidArgument("logprobs are not supported");
  const format = body.response_format as Body | undefined | null;
  if (format !== undefined && format !== null && (typeof format !== "object" || format.type !== "text")) {
    throw invalidArgument('response_format is not supported (only {type: "text"})');
  }
}

/** A field of the given type, or undefined when absent or null. */
function optional(body: Body, field: string, type: "number", prefix?: string): number | undefined;
function optional(body: Body, field: string, type: "string", prefix?: string): string | undefined;
function optional(body: Body, field: string, type: "boolean", prefix?: string): boolean | undefined;
function optional(body: Body, field: string, type: "number" | "string" | "boolean", prefix = ""): unknown {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== type || (type === "number" && !Number.isFinite(value))) throw invalidArgument(`${prefix}${field} must be a ${type}`);
  return value;
}
