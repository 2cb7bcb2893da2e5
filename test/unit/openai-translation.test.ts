import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { ModelswapError, resourceExhausted, unavailable } from "../../common/errors.js";
import { httpErrorOf, httpStatusOf } from "../../gateway/http/openai-errors.js";
import { chatCompletionRequest, completionRequest, DEFAULT_MAX_TOKENS } from "../../gateway/http/openai-requests.js";
import { chunkObject, completionObject, usageChunk } from "../../gateway/http/openai-responses.js";
import type { Done } from "../../gen/modelswap/v1/inference.js";

const user = [{ role: "user", content: "Once upon a time" }];

describe("OpenAI requests in modelswap's terms", () => {
  it("translates a chat completion with every supported field", () => {
    const call = chatCompletionRequest({
      model: "tiny",
      messages: [{ role: "developer", content: "be brief" }, { role: "user", content: [{ type: "text", text: "Once " }, { type: "text", text: "upon" }] }],
      max_tokens: 32,
      temperature: 0.5,
      top_p: 0.9,
      seed: 7,
      stop: "\n",
      stream: true,
      stream_options: { include_usage: true },
      top_k: 20,
      user: "ignored",
      frequency_penalty: 0,
    });
    assert.deepEqual(call, {
      request: {
        model: "tiny",
        task: "",
        messages: [{ role: "system", content: "be brief" }, { role: "user", content: "Once upon" }],
        maxTokens: 32,
        sampling: { temperature: 0.5, topP: 0.9, seed: 7, stop: ["\n"], topK: 20, minP: undefined, repeatPenalty: undefined, ignoreEos: undefined },
        resumable: true,
      },
      stream: true,
      includeUsage: true,
    });
  });

  it("fills defaults: max_tokens, no stream, nulls as absent; max_completion_tokens wins", () => {
    const call = chatCompletionRequest({ model: "tiny", messages: user, temperature: null, stop: null, stream_options: null });
    assert.equal(call.request.maxTokens, DEFAULT_MAX_TOKENS);
    assert.equal(call.stream, false);
    assert.equal(call.request.sampling?.temperature, undefined);
    assert.equal(chatCompletionRequest({ model: "tiny", messages: user, max_tokens: 5, max_completion_tokens: 9 }).request.maxTokens, 9);
  });

  it("translates a text completion (a one-element prompt array too)", () => {
    const call = completionRequest({ model: "tiny", prompt: ["Once"], max_tokens: 4, stop: ["."] });
    assert.equal(call.request.prompt, "Once");
    assert.deepEqual(call.request.sampling?.stop, ["."]);
  });

  const refused: [string, () => unknown, RegExp][] = [
    ["a body that is not an object", () => chatCompletionRequest([1, 2]), /the body must be a JSON object/],
    ["no model", () => chatCompletionRequest({ messages: user }), /model is required/],
    ["a model that is a number", () => chatCompletionRequest({ model: 5, messages: user }), /^model must be a string/],
    ["messages that are not an array", () => chatCompletionRequest({ model: "m", messages: "hi" }), /messages must be a non-empty array/],
    ["a message without a role", () => chatCompletionRequest({ model: "m", messages: [{ content: "hi" }] }), /messages\[0\]\.role must be a string/],
    ["an image part", () => chatCompletionRequest({ model: "m", messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }), /messages\[0\]\.content\[0\] must be \{type: "text"/],
    ["a tool message", () => chatCompletionRequest({ model: "m", messages: [{ role: "tool", content: "x" }] }), /tool calls are not supported/],
    ["temperature as a string", () => chatCompletionRequest({ model: "m", messages: user, temperature: "0.5" }), /^temperature must be a number/],
    ["max_tokens as a fraction", () => chatCompletionRequest({ model: "m", messages: user, max_tokens: 2.5 }), /max_tokens must be a whole number/],
    ["a negative seed", () => chatCompletionRequest({ model: "m", messages: user, seed: -1 }), /seed must be a whole number from 0 to 4294967295/],
    ["a stop that is a number", () => chatCompletionRequest({ model: "m", messages: user, stop: 5 }), /stop must be a string or an array of strings/],
    ["stream as a string", () => chatCompletionRequest({ model: "m", messages: user, stream: "yes" }), /^stream must be a boolean/],
    ["include_usage as a number", () => chatCompletionRequest({ model: "m", messages: user, stream_options: { include_usage: 1 } }), /stream_options\.include_usage must be a boolean/],
    ["n = 2", () => chatCompletionRequest({ model: "m", messages: user, n: 2 }), /n must be 1/],
    ["tools", () => chatCompletionRequest({ model: "m", messages: user, tools: [{}] }), /tools are not supported/],
    ["logprobs", () => chatCompletionRequest({ model: "m", messages: user, logprobs: true }), /logprobs are not supported/],
    ["JSON mode", () => chatCompletionRequest({ model: "m", messages: user, response_format: { type: "json_object" } }), /response_format is not supported/],
    ["token-array prompts", () => completionRequest({ model: "m", prompt: [1, 2, 3] }), /prompt must be a string/],
    ["echo", () => completionRequest({ model: "m", prompt: "x", echo: true }), /echo is not supported/],
  ];
  for (const [name, run, message] of refused) {
    it(`refuses ${name} with INVALID_ARGUMENT naming the field`, () => {
      assert.throws(run, (error: unknown) => error instanceof ModelswapError && error.code === status.INVALID_ARGUMENT && message.test(error.message));
    });
  }
});

describe("gRPC statuses as OpenAI HTTP errors", () => {
  const table: [string, number, number][] = [
    ["INVALID_ARGUMENT", status.INVALID_ARGUMENT, 400],
    ["FAILED_PRECONDITION", status.FAILED_PRECONDITION, 400],
    ["UNAUTHENTICATED", status.UNAUTHENTICATED, 401],
    ["PERMISSION_DENIED", status.PERMISSION_DENIED, 403],
    ["NOT_FOUND", status.NOT_FOUND, 404],
    ["RESOURCE_EXHAUSTED", status.RESOURCE_EXHAUSTED, 429],
    ["UNAVAILABLE", status.UNAVAILABLE, 503],
    ["DEADLINE_EXCEEDED", status.DEADLINE_EXCEEDED, 504],
    ["UNKNOWN", status.UNKNOWN, 500],
    ["INTERNAL", status.INTERNAL, 500],
  ];
  for (const [name, code, http] of table) it(`${name} -> ${http}`, () => assert.equal(httpStatusOf(code), http));

  it("puts Retry-After on 429 and 503, and OpenAI's error shape on every error", () => {
    const full = httpErrorOf(resourceExhausted("the wait queue is full; retry", 3), () => assert.fail("not unexpected"));
    assert.deepEqual(full, {
      status: 429,
      headers: { "retry-after": "3" },
      body: { error: { message: "the wait queue is full; retry", type: "rate_limit_error", param: null, code: "resource_exhausted" } },
    });
    assert.equal(httpErrorOf(unavailable("placement is restarting"), () => undefined).headers["retry-after"], "1");
    let logged: unknown;
    const bug = httpErrorOf(new TypeError("x is not a function"), (error) => (logged = error));
    assert.equal(bug.status, 500);
    assert.ok(logged instanceof TypeError, "unexpected errors are reported once");
    assert.doesNotMatch(bug.body.error.message, /not a function/, "internals stay in the log");
  });
});

describe("OpenAI answers from modelswap's events", () => {
  const done: Done = { finishReason: "length", model: "stories", failovers: 0, usage: { promptTokens: 5, completionTokens: 8, cachedPromptTokens: 3 }, timings: { queueMs: 1, loadMs: 0, ttftMs: 3, totalMs: 9, tokensPerSecond: 100 } };
  const identity = { id: "chatcmpl-1", created: 1700000000, model: "tiny" };

  it("builds chat.completion and text_completion objects with usage", () => {
    const chat = completionObject({ ...identity, kind: "chat" }, "Hello", done);
    assert.equal(chat.object, "chat.completion");
    assert.deepEqual(chat.choices, [{ index: 0, message: { role: "assistant", content: "Hello", refusal: null }, logprobs: null, finish_reason: "length" }]);
    assert.deepEqual(chat.usage, { prompt_tokens: 5, completion_tokens: 8, total_tokens: 13, prompt_tokens_details: { cached_tokens: 3 } });
    const text = completionObject({ ...identity, kind: "text" }, "Hello", { ...done, finishReason: "stop" });
    assert.deepEqual(text.choices, [{ index: 0, text: "Hello", logprobs: null, finish_reason: "stop" }]);
  });

  it("builds chunks: role first, content deltas, a finish_reason, then usage without choices", () => {
    const chat = { ...identity, kind: "chat" as const };
    assert.deepEqual(chunkObject(chat, { role: true, text: "" }).choices[0], { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null });
    assert.deepEqual(chunkObject(chat, { text: "Hi" }).choices[0], { index: 0, delta: { content: "Hi" }, logprobs: null, finish_reason: null });
    assert.deepEqual(chunkObject(chat, { finishReason: "stop" }).choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: "stop" });
    const usage = usageChunk(chat, done);
    assert.equal(usage.object, "chat.completion.chunk");
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.total_tokens, 13);
  });
});
