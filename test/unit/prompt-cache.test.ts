import assert from "node:assert/strict";
import { chooseSequence, commonPrefixLength, type KeptSequence, type SequenceChoice } from "../../services/runner/prompt-cache.js";

const kept = (tokens: number[], lastUsed: number, reusable = true): KeptSequence => ({ tokens, lastUsed, reusable });

describe("which sequence a prompt runs on (the prompt cache)", () => {
  it("measures the shared prefix of two token lists", () => {
    const table: [number[], number[], number][] = [
      [[], [1, 2], 0],
      [[1, 2, 3], [1, 2, 3], 3],
      [[1, 2, 3], [1, 2], 2],
      [[1, 2], [1, 2, 3], 2],
      [[1, 9, 3], [1, 2, 3], 1],
      [[7], [1], 0],
    ];
    for (const [a, b, expected] of table) assert.equal(commonPrefixLength(a, b), expected, `${a} vs ${b}`);
  });

  const prompt = [1, 10, 11, 12, 13];
  const table: { story: string; free: KeptSequence[]; canTakeNew: boolean; expected: SequenceChoice | undefined }[] = [
    { story: "nothing kept yet: a new sequence", free: [], canTakeNew: true, expected: { kind: "new" } },
    { story: "nothing free and none left: wait", free: [], canTakeNew: false, expected: undefined },
    {
      story: "the same prompt again: all but its last token reused (its logits give the first token)",
      free: [kept([1, 10, 11, 12, 13, 40, 41], 5)],
      canTakeNew: true,
      expected: { kind: "kept", index: 0, reuse: 4 },
    },
    {
      story: "a prompt that extends what a sequence holds reuses all of it",
      free: [kept([1, 10, 11], 5)],
      canTakeNew: true,
      expected: { kind: "kept", index: 0, reuse: 3 },
    },
    {
      story: "the longest shared prefix wins",
      free: [kept([1, 10, 50], 1), kept([1, 10, 11, 12, 60], 9), kept([1, 10, 11, 70], 2)],
      canTakeNew: false,
      expected: { kind: "kept", index: 1, reuse: 4 },
    },
    {
      story: "among equals, the least recently used is overwritten",
      free: [kept([1, 10, 50], 8), kept([1, 10, 60], 3)],
      canTakeNew: false,
      expected: { kind: "kept", index: 1, reuse: 2 },
    },
    {
      story: "only BOS in common: a fresh sequence keeps the other cache for later",
      free: [kept([1, 90, 91], 1)],
      canTakeNew: true,
      expected: { kind: "new" },
    },
    {
      story: "only BOS in common and no sequence left: the kept one is reused from BOS",
      free: [kept([1, 90, 91], 1)],
      canTakeNew: false,
      expected: { kind: "kept", index: 0, reuse: 1 },
    },
    {
      story: "a sequence whose KV was shifted reuses nothing",
      free: [kept([1, 10, 11, 12], 1, false)],
      canTakeNew: false,
      expected: { kind: "kept", index: 0, reuse: 0 },
    },
  ];
  for (const { story, free, canTakeNew, expected } of table) {
    it(story, () => assert.deepEqual(chooseSequence(free, prompt, canTakeNew), expected));
  }

  it("a one-token prompt always evaluates its token", () => {
    assert.deepEqual(chooseSequence([kept([1, 5], 1)], [1], false), { kind: "kept", index: 0, reuse: 0 });
  });
});
