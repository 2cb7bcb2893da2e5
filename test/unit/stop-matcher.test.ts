import assert from "node:assert/strict";
import { StopMatcher } from "../../services/runner/stop-matcher.js";

describe("stop strings", () => {
  const cases: { name: string; stops: string[]; pieces: string[]; emitted: string; stopped: boolean }[] = [
    { name: "no stops pass text through", stops: [], pieces: ["Once", " upon"], emitted: "Once upon", stopped: false },
    { name: "a stop inside one piece cuts before it", stops: ["\n\n"], pieces: ["The end.\n\nNext"], emitted: "The end.", stopped: true },
    { name: "a stop split across pieces is never shown", stops: ["END"], pieces: ["and then E", "N", "D!"], emitted: "and then ", stopped: true },
    { name: "a false start is released", stops: ["END"], pieces: ["E", "N", "x"], emitted: "ENx", stopped: false },
    { name: "the earliest of several stops wins", stops: ["cat", "dog"], pieces: ["a dog and a cat"], emitted: "a ", stopped: true },
    { name: "held text is flushed at the end", stops: ["User:"], pieces: ["hello Us"], emitted: "hello Us", stopped: false },
  ];
  for (const { name, stops, pieces, emitted, stopped } of cases) {
    it(name, () => {
      const matcher = new StopMatcher(stops);
      let text = "";
      let hit = false;
      for (const piece of pieces) {
        if (hit) break;
        const result = matcher.push(piece);
        text += result.emit;
        hit = result.stopped;
      }
      if (!hit) text += matcher.flush();
      assert.equal(text, emitted);
      assert.equal(hit, stopped);
    });
  }
});
