import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { ConfigError } from "../../common/config/config-error.js";
import { parseConfig } from "../../common/config/parse-config.js";
import { readConfigFile } from "../../common/config/read-config-file.js";
import { projectRoot } from "../support/paths.js";

const valid = () => ({
  listen: "127.0.0.1:50051",
  budget: "600MiB",
  models: [{ name: "stories", path: "../models/stories260K.gguf", context: 512, threads: 1, aliases: ["tiny"] }],
});

describe("config", () => {
  it("accepts the example from the README shape and fills defaults", () => {
    const config = parseConfig(valid(), "/srv/modelswap");
    assert.equal(config.budget.kind, "bytes");
    assert.equal(config.budget.kind === "bytes" && config.budget.bytes, 600 * 1024 * 1024);
    const model = config.models[0]!;
    assert.equal(model.path, "/srv/models/stories260K.gguf", "relative to the config's folder");
    assert.equal(model.threads, 1);
    assert.equal(model.sequences, 4);
    assert.deepEqual(model.replicas, { min: 1, max: 1 });
    assert.equal(config.placement.evictionPolicy, "cost");
  });

  it("accepts a percentage budget of available memory", () => {
    const config = parseConfig({ ...valid(), budget: "80%" }, "/");
    assert.deepEqual(config.budget, { kind: "fraction-of-available", fraction: 0.8 });
  });

  it("builds task routes from model tasks and explicit chains", () => {
    const config = parseConfig(
      {
        ...valid(),
        models: [
          { name: "coder", path: "/m/c.gguf", tasks: ["code"] },
          { name: "stories", path: "/m/s.gguf", tasks: ["story"] },
        ],
        routes: { code: ["coder", "stories"] },
      },
      "/",
    );
    assert.deepEqual(config.routes, { code: ["coder", "stories"], story: ["stories"] });
  });

  it("downloads models whose path is a source into models_dir (default ./models beside the config)", () => {
    const models = [
      { name: "qwen", path: "hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M" },
      { name: "web", path: "https://example.com/m/web.Q8_0.gguf" },
      { name: "stories", path: "../models/stories260K.gguf" },
    ];
    const config = parseConfig({ ...valid(), models }, "/srv/modelswap");
    assert.equal(config.modelsDir, "/srv/modelswap/models");
    assert.equal(config.models[0]!.path, "/srv/modelswap/models/hf_bartowski_Qwen2.5-0.5B-Instruct.Q4_K_M.gguf");
    assert.equal(config.models[0]!.source?.uri, "hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M");
    assert.equal(config.models[1]!.path, "/srv/modelswap/models/web.Q8_0.gguf");
    assert.equal(config.models[1]!.source?.kind, "url");
    assert.equal(config.models[2]!.source, undefined, "a file path has no source");
    const elsewhere = parseConfig({ ...valid(), models_dir: "/var/lib/models", models }, "/srv/modelswap");
    assert.equal(elsewhere.models[0]!.path, "/var/lib/models/hf_bartowski_Qwen2.5-0.5B-Instruct.Q4_K_M.gguf");
  });

  it("validates every shipped config in deploy/", () => {
    for (const file of ["local.yaml", "five-small.yaml", "one-large-two-small.yaml", "large-hot-swap.yaml"]) {
      const full = path.join(projectRoot, "deploy", file);
      assert.doesNotThrow(() => readConfigFile(full), file);
    }
  });

  const mistakes: [string, (document: ReturnType<typeof valid>) => unknown, RegExp][] = [
    ["missing models", (d) => ({ ...d, models: [] }), /^models must be a non-empty list/],
    ["threads not a positive integer", (d) => ({ ...d, models: [d.models[0], { name: "b", path: "/b", threads: 0 }] }), /^models\[1\]\.threads must be a positive integer$/],
    ["threads a string", (d) => ({ ...d, models: [{ ...d.models[0], threads: "two" }] }), /^models\[0\]\.threads must be a positive integer$/],
    ["model without path", (d) => ({ ...d, models: [{ name: "x" }] }), /^models\[0\]\.path must be a non-empty string$/],
    ["bad budget", (d) => ({ ...d, budget: "lots" }), /^budget must be a size like 5GiB or a percentage/],
    ["percentage over 100", (d) => ({ ...d, budget: "150%" }), /^budget must be/],
    ["bad listen", (d) => ({ ...d, listen: "localhost" }), /^listen must be host:port/],
    ["unknown key", (d) => ({ ...d, modles: [] }), /^modles is not a known setting/],
    ["unknown model key", (d) => ({ ...d, models: [{ ...d.models[0], thread: 1 }] }), /^models\[0\]\.thread is not a known setting/],
    ["duplicate name via alias", (d) => ({ ...d, models: [d.models[0], { name: "tiny", path: "/t" }] }), /models\[1\] uses the name "tiny" already taken by models\[0\] \(stories\)/],
    ["bad ttl", (d) => ({ ...d, models: [{ ...d.models[0], ttl: "soon" }] }), /^models\[0\]\.ttl must be a duration/],
    ["bad policy", (d) => ({ ...d, placement: { eviction: "fifo" } }), /^placement\.eviction must be one of lru, cost/],
    ["replicas max < min", (d) => ({ ...d, models: [{ ...d.models[0], replicas: { min: 3, max: 2 } }] }), /^models\[0\]\.replicas\.max must be >= replicas\.min/],
    ["temperature out of range", (d) => ({ ...d, models: [{ ...d.models[0], sampling: { temperature: 5 } }] }), /^models\[0\]\.sampling\.temperature must be a number from 0 to 2$/],
    ["route to unknown model", (d) => ({ ...d, routes: { code: ["coder"] } }), /^routes\.code\[0\] names unknown model "coder"/],
    ["bad gpu", (d) => ({ ...d, models: [{ ...d.models[0], gpu: "tpu" }] }), /^models\[0\]\.gpu must be one of/],
    ["source without quantisation", (d) => ({ ...d, models: [{ ...d.models[0], path: "hf:user/repo" }] }), /^models\[0\]\.path must say which quantisation to pull/],
    ["empty models_dir", (d) => ({ ...d, models_dir: "" }), /^models_dir must be a non-empty string$/],
  ];
  for (const [mistake, mutate, expected] of mistakes) {
    it(`names the field path for ${mistake}`, () => {
      assert.throws(
        () => parseConfig(mutate(valid()), "/"),
        (error: unknown) => error instanceof ConfigError && expected.test(error.message),
      );
    });
  }

  it("reports YAML syntax errors with the file name", () => {
    assert.throws(() => readConfigFile(path.join(projectRoot, "package.json.missing")), /cannot read config file/);
    assert.doesNotThrow(() => parse(readFileSync(path.join(projectRoot, "deploy/local.yaml"), "utf8")));
  });
});
