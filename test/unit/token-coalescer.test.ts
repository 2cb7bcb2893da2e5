import assert from "node:assert/strict";
import { TokenCoalescer } from "../../services/runner/token-coalescer.js";

describe("token coalescing", () => {
  it("sends the first token at once, joins tokens within the window, and flushes the rest", () => {
    // arrange
    let now = 0;
    const sent: [string, number][] = [];
    const coalescer = new TokenCoalescer((text, count) => void sent.push([text, count]), 5, () => now);
    // act: tokens 1 ms apart
    ["Once", " upon", " a", " time", ",", " there", " was"].forEach((piece, index) => {
      now = index;
      coalescer.push(piece, index + 1);
    });
    coalescer.flush();
    // assert
    assert.deepEqual(sent, [
      ["Once", 1],
      [" upon a time, there", 6],
      [" was", 7],
    ]);
  });

  it("sends every token when tokens are slower than the window", () => {
    let now = 0;
    const sent: string[] = [];
    const coalescer = new TokenCoalescer((text) => void sent.push(text), 5, () => now);
    for (const piece of ["a", "b", "c"]) {
      coalescer.push(piece, 1);
      now += 20;
    }
    coalescer.flush();
    assert.deepEqual(sent, ["a", "b", "c"]);
  });
});
