import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { ModelswapError } from "../../common/errors.js";
import { ApiKeys } from "../../common/auth/api-keys.js";
import type { Scope } from "../../common/config/config-types.js";
import { modelLabels } from "../../gateway/model-labels.js";

const ALICE = "alice-key-0123456789abcdef";
const OPS = "ops-key-0123456789abcdef00";
const PROMETHEUS = "prom-key-0123456789abcdef0";
const keys = new ApiKeys([
  { name: "alice", key: ALICE, scopes: ["infer"] },
  { name: "ops", key: OPS, scopes: ["infer", "admin"] },
  { name: "prometheus", key: PROMETHEUS, scopes: ["metrics"] },
]);

describe("API keys and scopes", () => {
  const allowed: [string, string, Scope, string][] = [
    ["an infer key for inference", `Bearer ${ALICE}`, "infer", "alice"],
    ["an admin key for inference", `Bearer ${OPS}`, "infer", "ops"],
    ["an admin key for admin", `Bearer ${OPS}`, "admin", "ops"],
    ["a lower-case scheme", `bearer ${ALICE}`, "infer", "alice"],
    ["a metrics key for /metrics", `Bearer ${PROMETHEUS}`, "metrics", "prometheus"],
    ["an admin key for /metrics", `Bearer ${OPS}`, "metrics", "ops"],
  ];
  for (const [name, header, scope, caller] of allowed) {
    it(`lets in ${name}`, () => assert.equal(keys.authorize(header, scope, "Inference/Generate").name, caller));
  }

  const refused: [string, string | undefined, Scope, number, RegExp][] = [
    ["no header", undefined, "infer", status.UNAUTHENTICATED, /needs an API key: send the header "authorization: Bearer <key>"/],
    ["an empty header", "", "infer", status.UNAUTHENTICATED, /needs an API key/],
    ["Basic credentials", "Basic YWxpY2U6c2VjcmV0", "infer", status.UNAUTHENTICATED, /must be "Bearer <key>"/],
    ["a bare key", ALICE, "infer", status.UNAUTHENTICATED, /must be "Bearer <key>"/],
    ["a wrong key", "Bearer wrong-key-0123456789abcdef", "infer", status.UNAUTHENTICATED, /API key is not valid/],
    ["a key one character short", `Bearer ${ALICE.slice(0, -1)}`, "infer", status.UNAUTHENTICATED, /API key is not valid/],
    ["an infer key for admin", `Bearer ${ALICE}`, "admin", status.PERMISSION_DENIED, /the key "alice" may not call Admin\/LoadModel: that needs the "admin" scope and the key has infer; ask the operator for a key with scopes \[infer, admin\]/],
    ["an infer key for /metrics", `Bearer ${ALICE}`, "metrics", status.PERMISSION_DENIED, /that needs the "metrics" scope and the key has infer; ask the operator for a key with scopes \[metrics\]/],
    ["a metrics key for inference", `Bearer ${PROMETHEUS}`, "infer", status.PERMISSION_DENIED, /the key "prometheus" may not call Inference\/Generate: that needs the "infer" scope/],
  ];
  for (const [name, header, scope, code, message] of refused) {
    it(`refuses ${name} without showing any key`, () => {
      assert.throws(
        () => keys.authorize(header, scope, scope === "admin" ? "Admin/LoadModel" : "Inference/Generate"),
        (error: unknown) => error instanceof ModelswapError && error.code === code && message.test(error.message) && !error.message.includes(ALICE.slice(0, 10)),
      );
    });
  }
});

describe("metric labels for models", () => {
  const label = modelLabels([{ name: "stories", aliases: ["tiny"] }, { name: "coder", aliases: [] }] as never);
  const table: [string, string][] = [
    ["stories", "stories"],
    ["tiny", "stories"],
    ["coder", "coder"],
    ["", "unknown"],
    ["llama-70b", "unknown"],
    ["constructor", "unknown"],
    ["x".repeat(60_000), "unknown"],
  ];
  for (const [asked, expected] of table) it(`labels "${asked.slice(0, 20)}" as ${expected}`, () => assert.equal(label(asked), expected));
});
