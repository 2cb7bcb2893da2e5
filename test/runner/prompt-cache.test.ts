import assert from "node:assert/strict";
import type { GenerateInput, GenerateOutcome, LoadedModel, LoadSpec, SamplingSettings } from "../../services/runner/engine.js";
import { LlamaEngine } from "../../services/runner/llama-engine.js";
import { storiesModel } from "../support/paths.js";

const GREEDY: SamplingSettings = { temperature: 0, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1, seed: undefined, stop: [], ignoreEos: false };
const spec = (sequences: number, warmUp: boolean): LoadSpec => ({ model: "stories", path: storiesModel, contextSize: 512, sequences, threads: 1, gpu: "cpu", warmUp, useMmap: false });
const prompt = (text: string, maxTokens = 40, sampling = GREEDY): GenerateInput => ({ kind: "prompt", prompt: text, resumeText: "", maxTokens, sampling });

async function run(model: LoadedModel, input: GenerateInput, signal = new AbortController().signal): Promise<{ text: string; outcome: GenerateOutcome }> {
  let text = "";
  const outcome = await model.generate(input, signal, (piece) => void (text += piece));
  return { text, outcome };
}

describe("the runner keeps each sequence's KV between requests (prompt cache, stories260K)", function () {
  this.timeout(60_000);
  const engine = new LlamaEngine();
  let model: LoadedModel;

  before(async () => {
    await engine.init("cpu");
    model = await engine.load(spec(2, true), () => undefined);
  });
  after(async () => model?.dispose());

  /** What a freshly loaded model (nothing cached, not even the warm-up's BOS) generates for the input. */
  async function cold(input: GenerateInput): Promise<{ text: string; outcome: GenerateOutcome }> {
    const fresh = await engine.load(spec(1, false), () => undefined);
    try {
      return await run(fresh, input);
    } finally {
      await fresh.dispose();
    }
  }

  it("the same story prompt twice: the second evaluates only its last token and writes the same story", async () => {
    const input = prompt("Once upon a time, there was a little girl named Lily.");
    const reference = await cold(input);
    assert.equal(reference.outcome.cachedPromptTokens, 0);
    assert.ok(reference.outcome.completionTokens > 0);

    const first = await run(model, input);
    const second = await run(model, input);

    assert.equal(first.text, reference.text);
    assert.equal(second.text, reference.text);
    assert.equal(second.outcome.promptTokens, reference.outcome.promptTokens);
    assert.equal(second.outcome.cachedPromptTokens, second.outcome.promptTokens - 1);
    assert.equal(second.outcome.completionTokens, reference.outcome.completionTokens);
  });

  it("a prompt that continues the previous story reuses all of that story's tokens and matches a cold run", async () => {
    const opening = prompt("One day, a boy named Tom went to the park.", 24);
    const story = await run(model, opening);
    const continued = prompt(`One day, a boy named Tom went to the park.${story.text} Then`, 32);

    const reference = await cold(continued);
    const cached = await run(model, continued);

    assert.equal(cached.text, reference.text);
    assert.equal(cached.outcome.promptTokens, reference.outcome.promptTokens);
    // At least the opening prompt is reused; the generated tokens too, where the continued text tokenizes the same way.
    assert.ok(cached.outcome.cachedPromptTokens >= story.outcome.promptTokens, `reused ${cached.outcome.cachedPromptTokens} of ${cached.outcome.promptTokens}`);
    assert.ok(cached.outcome.cachedPromptTokens < cached.outcome.promptTokens);
  });

  it("a prompt that shares only the start of another is cut back to the shared prefix, with the cold output", async () => {
    await run(model, prompt("The sun was shining and the birds were singing in the tall green trees."));
    const input = prompt("The sun was shining and the cat was sleeping.");
    const reference = await cold(input);

    const cached = await run(model, input);

    assert.equal(cached.text, reference.text);
    assert.ok(cached.outcome.cachedPromptTokens > 1 && cached.outcome.cachedPromptTokens < cached.outcome.promptTokens - 1, `reused ${cached.outcome.cachedPromptTokens}`);
  });

  it("seeded sampling gives the same story with and without the cache", async () => {
    const input = prompt("Once upon a time, there was a big red ball.", 40, { ...GREEDY, temperature: 0.8, seed: 42 });
    const reference = await cold(input);

    await run(model, input);
    const cached = await run(model, input);

    assert.ok(cached.outcome.cachedPromptTokens > 0);
    assert.equal(cached.text, reference.text);
  });

  it("two concurrent stories each keep their own sequence: both are reused on the next round", async () => {
    const inputs = [prompt("Sam had a small blue boat that he loved very much."), prompt("In a big forest lived a kind old bear who liked honey.")];
    const references = [await cold(inputs[0]!), await cold(inputs[1]!)];

    await Promise.all(inputs.map((input) => run(model, input)));
    const again = await Promise.all(inputs.map((input) => run(model, input)));

    again.forEach((result, index) => {
      assert.equal(result.text, references[index]!.text);
      assert.equal(result.outcome.cachedPromptTokens, result.outcome.promptTokens - 1, `story ${index}`);
    });
  });

  it("a chat that grows by a turn reuses the earlier turns and answers as a cold model does", async () => {
    const chat = (turns: { role: string; content: string }[]): GenerateInput => ({ kind: "chat", turns, resumeText: "", maxTokens: 24, sampling: GREEDY });
    const firstTurns = [{ role: "user", content: "Tell me about a cat." }];
    const first = await run(model, chat(firstTurns));
    const grown = chat([...firstTurns, { role: "assistant", content: first.text }, { role: "user", content: "What did the cat eat?" }]);
    const reference = await cold(grown);

    const cached = await run(model, grown);

    assert.equal(cached.text, reference.text);
    assert.ok(cached.outcome.cachedPromptTokens >= first.outcome.promptTokens - 1, `reused ${cached.outcome.cachedPromptTokens}; the first turn's prompt was ${first.outcome.promptTokens} tokens`);
  });

  it("a cancelled stream leaves its sequence usable: the next request reuses it and writes the cold story", async () => {
    const input = prompt("Mia found a shiny key under her bed.", 64);
    const reference = await cold(input);
    const controller = new AbortController();
    let pieces = 0;
    const cancelled = await model.generate(input, controller.signal, () => {
      if (++pieces === 5) controller.abort();
    });
    assert.equal(cancelled.finishReason, "cancelled");

    const after = await run(model, input);

    assert.equal(after.outcome.cachedPromptTokens, after.outcome.promptTokens - 1);
    assert.equal(after.text, reference.text);
  });
});
