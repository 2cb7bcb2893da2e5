import assert from "node:assert/strict";
import { request as httpRequest, type IncomingMessage } from "node:http";
import OpenAI from "openai";
import { startCluster, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";
import { nextHeartbeat, runnerServing } from "../support/runner-heartbeats.js";

const INFER_KEY = "infer-key-0123456789abcdef";
const ADMIN_KEY = "admin-key-0123456789abcdef";
const COMMON_WORDS = ["the", "was", "a", "and", "to", "she", "he", "her", "they", "day"];

/** Raw HTTP against the API (for what the SDK hides: statuses, headers, disconnects). */
function post(address: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage["headers"]; text: string }> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const [host, port] = address.split(":");
    const call = httpRequest({ host, port: Number(port), path, method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${INFER_KEY}`, ...headers } }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, text }));
    });
    call.on("error", reject);
    call.end(payload);
  });
}

/** A user points the official `openai` client (and curl-like raw HTTP) at modelswap's HTTP API. */
describe("the OpenAI-compatible HTTP API (official openai client, real runner)", function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let address: string;
  let openai: OpenAI;

  before(async () => {
    cluster = await startCluster({
      budget: "1GiB",
      http: { listen: "127.0.0.1:0" },
      auth: {
        keys: [
          { name: "alice", key: INFER_KEY, scopes: ["infer"] },
          { name: "ops", key: ADMIN_KEY, scopes: ["infer", "admin"] },
        ],
      },
      models: [{ name: "stories", path: storiesModel, context: 512, threads: 1, sequences: 4, aliases: ["tiny"], tasks: ["story"], preload: true }],
    });
    await cluster.waitForEvent((event) => event.kind === "loaded" && event.model === "stories");
    address = cluster.gateway.httpAddress!;
    openai = new OpenAI({ apiKey: INFER_KEY, baseURL: `http://${address}/v1`, maxRetries: 0 });
  });
  after(async () => cluster?.stop());

  it("streams a chat completion with usage to the openai client holding an infer key", async () => {
    // act
    const stream = await openai.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Once upon a time" }],
      max_tokens: 48,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let role: string | undefined;
    const finishReasons: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      const choice = chunk.choices[0];
      if (choice) {
        role ??= choice.delta.role;
        text += choice.delta.content ?? "";
        if (choice.finish_reason) finishReasons.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    // assert
    assert.equal(role, "assistant");
    assert.deepEqual(finishReasons.length, 1);
    assert.ok(["stop", "length"].includes(finishReasons[0]!));
    const words = text.toLowerCase().split(/[^a-z]+/);
    assert.ok(COMMON_WORDS.filter((word) => words.includes(word)).length >= 2, `expected English in: ${text}`);
    assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 48, JSON.stringify(usage));
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    if (finishReasons[0] === "length") assert.equal(usage.completion_tokens, 48);
  });

  it("reports the prompt tokens a conversation's next turn took from the runner's prompt cache (usage.prompt_tokens_details.cached_tokens)", async () => {
    // arrange: a first turn
    const first = [{ role: "user" as const, content: "Tell me a story about a little dog named Max who found a red ball in the park." }];
    const one = await openai.chat.completions.create({ model: "stories", messages: first, max_tokens: 16, temperature: 0 });
    const reply = one.choices[0]!.message.content ?? "";
    // act: the next turn repeats the conversation so far, as chat clients do
    const two = await openai.chat.completions.create({
      model: "stories",
      messages: [...first, { role: "assistant", content: reply }, { role: "user", content: "What happened next?" }],
      max_tokens: 16,
      temperature: 0,
    });
    // assert: the second turn's prompt is longer, and it did not evaluate what the first one left in the cache
    const cached = two.usage!.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(two.usage!.prompt_tokens > one.usage!.prompt_tokens, JSON.stringify([one.usage, two.usage]));
    assert.ok(cached > 0 && cached < two.usage!.prompt_tokens, JSON.stringify(two.usage));
  });

  it("lists the models with their residency to the openai client", async () => {
    const models = [];
    for await (const model of openai.models.list()) models.push(model as OpenAI.Model & { state: string; aliases: string[]; context_size: number });
    assert.equal(models.length, 1);
    assert.equal(models[0]!.id, "stories");
    assert.equal(models[0]!.object, "model");
    assert.equal(models[0]!.state, "resident");
    assert.deepEqual(models[0]!.aliases, ["tiny"]);
    assert.equal(models[0]!.context_size, 512);
    const one = (await openai.models.retrieve("tiny")) as OpenAI.Model & { state: string };
    assert.equal(one.id, "stories");
  });

  it("answers a wrong or missing key with 401 and says what to send", async () => {
    const wrong = new OpenAI({ apiKey: "not-a-key-at-all-000000", baseURL: `http://${address}/v1`, maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (error: unknown) => {
      assert.ok(error instanceof OpenAI.AuthenticationError, String(error));
      assert.equal(error.status, 401);
      assert.match(error.message, /API key is not valid/);
      return true;
    });
    const missing = await post(address, "/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }] }, { authorization: "" });
    assert.equal(missing.status, 401);
    const body = JSON.parse(missing.text) as { error: { type: string; message: string } };
    assert.equal(body.error.type, "authentication_error");
    assert.match(body.error.message, /Bearer <key>/);
    // an encoded path that routes to /v1/models still needs the key
    const encoded = await new Promise<number>((resolve, reject) => {
      const [host, port] = address.split(":");
      httpRequest({ host, port: Number(port), path: "/%761/models" }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
        .on("error", reject)
        .end();
    });
    assert.ok(encoded === 401 || encoded === 404, `status ${encoded}`);
  });

  it("answers non-streamed chat and text completions with usage, finish_reason, stop and max_tokens", async () => {
    const chat = await openai.chat.completions.create({
      model: "stories",
      messages: [{ role: "user", content: "Once upon a time" }],
      max_tokens: 8,
      temperature: 0.7,
      top_p: 0.9,
      seed: 42,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.equal(chat.object, "chat.completion");
    assert.equal(chat.model, "stories");
    assert.equal(chat.choices[0]!.message.role, "assistant");
    assert.equal(chat.choices[0]!.finish_reason, "length");
    assert.equal(chat.usage!.completion_tokens, 8);
    assert.ok(chat.choices[0]!.message.content!.length > 0);

    const completion = await openai.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 64, temperature: 0, stop: ["."] });
    assert.equal(completion.object, "text_completion");
    const choice = completion.choices[0]!;
    assert.ok(!choice.text.includes("."), `stop string in: ${choice.text}`);
    if (choice.finish_reason === "stop") assert.ok(completion.usage!.completion_tokens < 64);
    else assert.equal(completion.usage!.completion_tokens, 64);

    // the same seed samples the same text
    const seeded = () => openai.completions.create({ model: "tiny", prompt: "The dog", max_tokens: 24, temperature: 1, seed: 1234 });
    assert.equal((await seeded()).choices[0]!.text, (await seeded()).choices[0]!.text);
  });

  it("streams a text completion as server-sent events ending in [DONE]", async () => {
    const response = await post(address, "/v1/completions", { model: "tiny", prompt: "Once upon a time", max_tokens: 12, stream: true, ignore_eos: true, stream_options: { include_usage: true } });
    assert.equal(response.status, 200);
    assert.match(String(response.headers["content-type"]), /^text\/event-stream/);
    const events = response.text.split("\n\n").filter((block) => block.startsWith("data: ")).map((block) => block.slice(6));
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event) as { object: string; choices: { text: string; finish_reason: string | null }[]; usage?: { completion_tokens: number } });
    assert.ok(chunks.every((chunk) => chunk.object === "text_completion"));
    assert.equal(chunks.at(-1)!.usage!.completion_tokens, 12);
    assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, "length");
  });

  it("answers mistakes in OpenAI's error shape with the matching status", async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ["unknown model", { model: "llama-70b", messages: [{ role: "user", content: "hi" }] }, 404, /not in the catalog/],
      ["task constructor", { task: "constructor", messages: [{ role: "user", content: "hi" }] }, 404, /task "constructor" has no route/],
      ["task __proto__", { task: "__proto__", messages: [{ role: "user", content: "hi" }] }, 404, /has no route/],
      ["temperature out of range", { model: "tiny", temperature: 9, messages: [{ role: "user", content: "hi" }] }, 400, /temperature/],
      ["temperature as text", { model: "tiny", temperature: "hot", messages: [{ role: "user", content: "hi" }] }, 400, /temperature must be a number/],
      ["no messages", { model: "tiny", messages: [] }, 400, /messages must be a non-empty array/],
      ["max_tokens over the context", { model: "tiny", max_tokens: 4096, messages: [{ role: "user", content: "hi" }] }, 400, /context of 512/],
      ["a 150 KB model name", { model: "m".repeat(150_000), messages: [{ role: "user", content: "hi" }] }, 400, /names are at most 256 bytes/],
      ["n = 3", { model: "tiny", n: 3, messages: [{ role: "user", content: "hi" }] }, 400, /n must be 1/],
    ];
    for (const [what, body, status, message] of cases) {
      const response = await post(address, "/v1/chat/completions", body);
      assert.equal(response.status, status, `${what}: ${response.text}`);
      const error = (JSON.parse(response.text) as { error: { message: string; type: string } }).error;
      assert.match(error.message, message, what);
      assert.ok(error.message.length < 400, `${what}: the message does not echo the input`);
    }
    const badJson = await post(address, "/v1/chat/completions", "{not json");
    assert.equal(badJson.status, 400);
    assert.ok((JSON.parse(badJson.text) as { error: { type: string } }).error.type === "invalid_request_error");
    const huge = await post(address, "/v1/completions", { model: "tiny", prompt: "x".repeat(1024 * 1024) });
    assert.equal(huge.status, 413);
    const notFound = await post(address, "/v1/embeddings", { model: "tiny", input: "x" });
    assert.equal(notFound.status, 404);
    // nothing else was disturbed
    const fine = await openai.completions.create({ model: "tiny", prompt: "Once", max_tokens: 4 });
    assert.ok(fine.usage!.completion_tokens > 0);
  });

  it("stops generating in the runner when a streaming client disconnects, and frees the slot", async () => {
    // arrange: a long stream, dropped after a few chunks
    const runnerId = runnerServing(cluster, "stories");
    const before = await nextHeartbeat(cluster, runnerId, (beat) => beat.inFlight === 0);
    const [host, port] = address.split(":");
    await new Promise<void>((resolve, reject) => {
      const call = httpRequest({ host, port: Number(port), path: "/v1/completions", method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${INFER_KEY}` } }, (response) => {
        let chunks = 0;
        response.on("data", () => {
          if (++chunks === 5) {
            call.destroy(); // act: the client goes away mid-stream
            resolve();
          }
        });
        response.on("end", () => reject(new Error("the stream ended before the client left")));
      });
      call.on("error", () => undefined);
      call.end(JSON.stringify({ model: "stories", prompt: "Once upon a time", max_tokens: 480, ignore_eos: true, stream: true }));
    });
    // assert: the runner reports nothing in flight, and its token count stops growing
    const afterDisconnect = await nextHeartbeat(cluster, runnerId, (beat) => beat.inFlight === 0);
    const later = await nextHeartbeat(cluster, runnerId, () => true);
    const generated = afterDisconnect.tokensGenerated - before.tokensGenerated;
    assert.ok(generated > 0 && generated < 480, `generated ${generated} of 480 tokens`);
    assert.equal(later.tokensGenerated, afterDisconnect.tokensGenerated, "the runner kept generating after the client left");
    const models = await openai.models.list();
    assert.equal((models.data[0] as OpenAI.Model & { in_flight: number }).in_flight, 0);
  });

  it("keeps GET /health open without a key", async () => {
    const response = await new Promise<number>((resolve, reject) => {
      const [host, port] = address.split(":");
      httpRequest({ host, port: Number(port), path: "/health" }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
        .on("error", reject)
        .end();
    });
    assert.equal(response, 200);
  });
});
