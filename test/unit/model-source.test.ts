import assert from "node:assert/strict";
import { isModelSource, parseModelSource, type ModelSource } from "../../common/config/parse-model-source.js";

describe("model sources (modelswap pull, catalog path: hf:… or a URL)", () => {
  const accepted: [string, ModelSource][] = [
    [
      "hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
      { kind: "hf-quant", uri: "hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M", fileName: "hf_bartowski_Qwen2.5-0.5B-Instruct.Q4_K_M.gguf", user: "bartowski", repo: "Qwen2.5-0.5B-Instruct-GGUF", quant: "Q4_K_M" },
    ],
    [
      "hf:Qwen/Qwen2.5-7B-Instruct-GGUF:q8_0",
      { kind: "hf-quant", uri: "hf:Qwen/Qwen2.5-7B-Instruct-GGUF:Q8_0", fileName: "hf_Qwen_Qwen2.5-7B-Instruct.Q8_0.gguf", user: "Qwen", repo: "Qwen2.5-7B-Instruct-GGUF", quant: "Q8_0" },
    ],
    [
      "hf:ggml-org/models/tinyllamas/stories260K.gguf",
      { kind: "hf-file", uri: "hf:ggml-org/models/tinyllamas/stories260K.gguf", fileName: "hf_ggml-org_stories260K.gguf", user: "ggml-org", repo: "models", file: "tinyllamas/stories260K.gguf", branch: "main" },
    ],
    [
      "hf:user/repo/model.Q4_K_M.gguf#v2",
      { kind: "hf-file", uri: "hf:user/repo/model.Q4_K_M.gguf#v2", fileName: "hf_user_model.Q4_K_M.gguf", user: "user", repo: "repo", file: "model.Q4_K_M.gguf", branch: "v2" },
    ],
    [
      "https://example.com/models/llama%203.Q4_K_M.gguf?download=true",
      { kind: "url", uri: "https://example.com/models/llama%203.Q4_K_M.gguf?download=true", fileName: "llama_3.Q4_K_M.gguf" },
    ],
    ["  http://127.0.0.1:8080/m.gguf ", { kind: "url", uri: "http://127.0.0.1:8080/m.gguf", fileName: "m.gguf" }],
  ];
  for (const [text, expected] of accepted) {
    it(`reads ${text.trim()}`, () => {
      assert.ok(isModelSource(text));
      assert.deepEqual(parseModelSource(text), { ok: true, source: expected });
    });
  }

  const refused: [string, RegExp][] = [
    ["hf:user/repo", /must say which quantisation to pull, e\.g\. hf:user\/repo:Q4_K_M/],
    ["hf:user/repo:Q4 K", /must say which quantisation/],
    ["hf:/repo:Q4_K_M", /must name a Hugging Face repository/],
    ["hf:user/repo:Q4_K_M#dev", /branch \(#…\) only with a file/],
    ["hf:user/repo/notes.txt", /must name a \.gguf file/],
    ["hf:user/repo/../../etc/x.gguf", /has an empty, "\." or "\.\." part/],
    ["https://example.com/download?id=3", /must end its path in a \.gguf file name/],
    ["https://user:secret@example.com/m.gguf", /must not carry credentials/],
    ["https://exa mple.com/m.gguf", /is not a valid URL/],
    [`https://example.com/${"a".repeat(2100)}.gguf`, /is longer than 2048 characters/],
    ["ftp://example.com/m.gguf", /must be a model source like hf:/],
  ];
  for (const [text, reason] of refused) {
    it(`refuses ${text.slice(0, 60)}, saying what to fix`, () => {
      const parsed = parseModelSource(text);
      assert.equal(parsed.ok, false);
      assert.match(!parsed.ok ? parsed.reason : "", reason);
    });
  }

  it("tells local paths from sources", () => {
    for (const local of ["../models/stories260K.gguf", "/models/x.gguf", "hf.gguf", "models/https.gguf"]) assert.equal(isModelSource(local), false, local);
  });
});
