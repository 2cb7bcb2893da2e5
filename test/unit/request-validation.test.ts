import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { ModelswapError } from "../../common/errors.js";
import type { GenerateRequest } from "../../gen/modelswap/v1/inference.js";
import { routeTask } from "../../services/router/task-routing.js";
import { validateChat, validateGenerate } from "../../services/router/validate-request.js";

const base: GenerateRequest = { model: "stories", prompt: "Once upon a time", maxTokens: 16, task: "", resumable: false, sampling: undefined };

function invalid(run: () => unknown, message: RegExp) {
  assert.throws(run, (error: unknown) => error instanceof ModelswapError && error.code === status.INVALID_ARGUMENT && message.test(error.message));
}

describe("request validation", () => {
  it("accepts a plain request", () => {
    assert.equal(validateGenerate(base, 1000).maxTokens, 16);
  });
  const table: [string, Partial<GenerateRequest>, RegExp][] = [
    ["no model or task", { model: "" }, /set model .* or task/],
    ["empty prompt", { prompt: "" }, /prompt is empty/],
    ["oversize prompt", { prompt: "x".repeat(1001) }, /prompt is 1001 bytes; at most 1000/],
    ["zero max_tokens", { maxTokens: 0 }, /max_tokens is 0/],
    ["negative max_tokens", { maxTokens: -1 }, /max_tokens is -1/],
    ["absurd max_tokens", { maxTokens: 2_000_000_000 }, /max_tokens is 2000000000/],
    ["temperature too high", { sampling: { temperature: 3, stop: [] } }, /sampling\.temperature is 3/],
    ["top_p zero", { sampling: { topP: 0, stop: [] } }, /sampling\.top_p is 0/],
    ["repeat_penalty below 1", { sampling: { repeatPenalty: 0.5, stop: [] } }, /sampling\.repeat_penalty/],
    ["too many stops", { sampling: { stop: Array(9).fill("x") } }, /at most 8/],
    ["empty stop", { sampling: { stop: [""] } }, /sampling\.stop\[0\]/],
    ["a 1 MB model name", { model: "m".repeat(1024 * 1024) }, /^model is 1048576 bytes; names are at most 256 bytes/],
    ["a 257-byte task", { model: "", task: "t".repeat(257) }, /^task is 257 bytes; names are at most 256 bytes/],
    ["a 300-byte multi-byte model name", { model: "\u00e9".repeat(150) }, /^model is 300 bytes/],
  ];
  for (const [name, change, message] of table) {
    it(`rejects ${name} with INVALID_ARGUMENT saying what to fix`, () => invalid(() => validateGenerate({ ...base, ...change }, 1000), message));
  }
  it("checks chat roles and that the user speaks last", () => {
    const chat = { model: "stories", maxTokens: 8, task: "", resumable: false, sampling: undefined };
    invalid(() => validateChat({ ...chat, messages: [] }, 1000), /messages is empty/);
    invalid(() => validateChat({ ...chat, messages: [{ role: "robot", content: "hi" }] }, 1000), /messages\[0\]\.role is "robot"/);
    invalid(() => validateChat({ ...chat, messages: [{ role: "r".repeat(100_000), content: "hi" }] }, 1000), /^messages\[0\]\.role is 100000 bytes long; use "system"/);
    invalid(() => validateChat({ ...chat, messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }] }, 1000), /last message must have role "user"/);
    assert.equal(validateChat({ ...chat, messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }] }, 1000).input.kind, "chat");
  });
});

describe("task routing", () => {
  const chain = [
    { name: "coder-7b", resident: false },
    { name: "coder-1b", resident: true },
    { name: "stories", resident: true },
  ];
  const table: [string, typeof chain | undefined, boolean, string | undefined][] = [
    ["first choice when resident is not preferred", chain, false, "coder-7b"],
    ["first resident model of the chain when preferred", chain, true, "coder-1b"],
    ["first choice when none is resident", chain.map((c) => ({ ...c, resident: false })), true, "coder-7b"],
    ["nothing for an unknown task", undefined, true, undefined],
  ];
  for (const [name, candidates, preferResident, expected] of table) {
    it(name, () => assert.equal(routeTask(candidates, preferResident), expected));
  }
});
