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
    assert.equal(config.placement.maxDownloads, 2);
  });

  it("accepts a percentage budget (of available memory, or of physical memory on a Jetson: resolve-budget)", () => {
    const config = parseConfig({ ...valid(), budget: "80%" }, "/");
    assert.deepEqual(config.budget, { kind: "fraction", fraction: 0.8 });
  });

  it("offloads as many layers as fit by default, a set number, or none on the CPU", () => {
    const config = parseConfig(
      {
        ...valid(),
        defaults: { gpu_layers: 20 },
        models: [
          { name: "coder", path: "/m/c.gguf" },
          { name: "chat", path: "/m/h.gguf", gpu_layers: "auto" },
          { name: "small", path: "/m/s.gguf", gpu_layers: 0 },
          { name: "cpu-only", path: "/m/p.gguf", gpu: "cpu" },
        ],
      },
      "/",
    );
    assert.deepEqual(config.models.map((model) => [model.name, model.gpuLayers]), [["coder", 20], ["chat", "auto"], ["small", 0], ["cpu-only", 0]]);
    assert.equal(parseConfig(valid(), "/").models[0]!.gpuLayers, "auto");
  });

  it("takes a GPU budget for discrete GPUs and a unified-memory override", () => {
    const defaults = parseConfig(valid(), "/");
    assert.equal(defaults.gpuBudget, undefined, "GPU memory is not budgeted unless asked");
    assert.equal(defaults.unifiedMemory, "auto");
    const set = parseConfig({ ...valid(), gpu_budget: "20GiB", unified_memory: false }, "/");
    assert.deepEqual(set.gpuBudget, { kind: "bytes", bytes: 20 * 1024 ** 3 });
    assert.equal(set.unifiedMemory, false);
    assert.deepEqual(parseConfig({ ...valid(), gpu_budget: "90%" }, "/").gpuBudget, { kind: "fraction", fraction: 0.9 });
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
    assert.deepEqual({ ...config.routes }, { code: ["coder", "stories"], story: ["stories"] });
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
    const checked = parseConfig({ ...valid(), models: [{ ...models[0], sha256: "AB".repeat(32) }] }, "/srv/modelswap");
    assert.equal(checked.models[0]!.sha256, "ab".repeat(32), "the checksum a download must match");
    const elsewhere = parseConfig({ ...valid(), models_dir: "/var/lib/models", models }, "/srv/modelswap");
    assert.equal(elsewhere.models[0]!.path, "/var/lib/models/hf_bartowski_Qwen2.5-0.5B-Instruct.Q4_K_M.gguf");
  });

  it("validates every shipped config in deploy/", () => {
    // The container configs listen on 0.0.0.0 with keys from the environment (docker-compose passes them).
    const containerKeys = { MODELSWAP_ADMIN_KEY: "a".repeat(32), MODELSWAP_INFER_KEY: "i".repeat(32) };
    for (const file of ["local.yaml", "five-small.yaml", "one-large-two-small.yaml", "large-hot-swap.yaml", "jetson.yaml", "cuda.yaml", "container.yaml"]) {
      const full = path.join(projectRoot, "deploy", file);
      assert.doesNotThrow(() => readConfigFile(full, containerKeys), file);
    }
    // jetson.yaml listens on 0.0.0.0 with keys from the environment (docker-compose passes them)
    const jetson = path.join(projectRoot, "deploy", "jetson.yaml");
    const keys = { MODELSWAP_ADMIN_KEY: "a".repeat(32), MODELSWAP_INFER_KEY: "i".repeat(32) };
    const config = readConfigFile(jetson, keys);
    assert.deepEqual(config.auth?.keys.map((key) => key.scopes), [["infer", "admin"], ["infer"]]);
    assert.throws(() => readConfigFile(jetson, {}), /key_env names MODELSWAP_ADMIN_KEY, which is not set/);
  });

  it("reads http, auth (keys inline or from the environment) and tls; resolves tls paths against the config", () => {
    const config = parseConfig(
      {
        ...valid(),
        listen: "0.0.0.0:50051",
        http: { listen: "0.0.0.0:8080" },
        auth: { keys: [{ name: "alice", key_env: "ALICE_KEY", scopes: ["infer"] }, { name: "ops", key: "o".repeat(16), scopes: ["infer", "admin"] }] },
        tls: { cert: "tls/cert.pem", key: "/etc/key.pem" },
      },
      "/srv/modelswap",
      { ALICE_KEY: "k".repeat(40) },
    );
    assert.deepEqual(config.http, { listen: "0.0.0.0:8080" });
    assert.deepEqual(config.auth, { keys: [{ name: "alice", key: "k".repeat(40), scopes: ["infer"] }, { name: "ops", key: "o".repeat(16), scopes: ["infer", "admin"] }] });
    assert.deepEqual(config.tls, { certPath: "/srv/modelswap/tls/cert.pem", keyPath: "/etc/key.pem" });
    assert.equal(parseConfig(valid(), "/").http, undefined, "no http section: the HTTP API is off");
  });

  it("gives routes no prototype: tasks named like Object members are not routes", () => {
    const config = parseConfig({ ...valid(), models: [{ ...valid().models[0], tasks: ["story"] }] }, "/");
    for (const task of ["constructor", "__proto__", "toString"]) assert.equal(Object.hasOwn(config.routes, task), false);
    assert.equal(config.routes.constructor, undefined);
  });

  const exposures: [string, Record<string, unknown>, RegExp | undefined][] = [
    ["gRPC on 0.0.0.0 without auth", { listen: "0.0.0.0:50051" }, /^listen is 0\.0\.0\.0:50051, reachable from other hosts, and no auth is configured/],
    ["gRPC on :: without auth", { listen: "[::]:50051" }, /^listen is \[::\]:50051, reachable/],
    ["gRPC on a LAN address without auth", { listen: "192.168.1.20:50051" }, /^listen is 192\.168\.1\.20:50051/],
    ["HTTP on 0.0.0.0 without auth", { http: { listen: "0.0.0.0:8080" } }, /^http\.listen is 0\.0\.0\.0:8080, reachable/],
    ["loopback without auth", { listen: "127.0.0.1:50051", http: { listen: "[::1]:8080" } }, undefined],
    ["localhost and unix sockets without auth", { listen: "unix:/run/modelswap.sock", http: { listen: "localhost:8080" } }, undefined],
    ["0.0.0.0 with auth", { listen: "0.0.0.0:50051", auth: { keys: [{ name: "a", key: "k".repeat(16), scopes: ["infer"] }] } }, undefined],
    ["0.0.0.0 allowed on purpose", { listen: "0.0.0.0:50051", allow_unauthenticated_public: true }, undefined],
  ];
  for (const [name, change, expected] of exposures) {
    it(`${expected ? "refuses" : "accepts"} ${name}`, () => {
      const run = () => parseConfig({ ...valid(), ...change }, "/");
      if (expected) assert.throws(run, (error: unknown) => error instanceof ConfigError && expected.test(error.message));
      else assert.doesNotThrow(run);
    });
  }

  const authMistakes: [string, unknown, RegExp][] = [
    ["no keys", { keys: [] }, /^auth\.keys must be a non-empty list/],
    ["key and key_env both", { keys: [{ name: "a", key: "k".repeat(16), key_env: "X", scopes: ["infer"] }] }, /^auth\.keys\[0\] must set exactly one of key or key_env/],
    ["a short key", { keys: [{ name: "a", key: "short", scopes: ["infer"] }] }, /^auth\.keys\[0\]: the key must be 16 to 256 visible ASCII characters/],
    ["an unset key_env", { keys: [{ name: "a", key_env: "NOT_SET", scopes: ["infer"] }] }, /^auth\.keys\[0\]\.key_env names NOT_SET, which is not set/],
    ["an unknown scope", { keys: [{ name: "a", key: "k".repeat(16), scopes: ["root"] }] }, /^auth\.keys\[0\]\.scopes has "root"; use infer, admin, metrics \(one or more\)/],
    ["no scopes", { keys: [{ name: "a", key: "k".repeat(16), scopes: [] }] }, /^auth\.keys\[0\]\.scopes must list/],
    ["a name twice", { keys: [{ name: "a", key: "k".repeat(16), scopes: ["infer"] }, { name: "a", key: "j".repeat(16), scopes: ["infer"] }] }, /^auth\.keys\[1\]\.name "a" is used twice/],
    ["a key twice", { keys: [{ name: "a", key: "k".repeat(16), scopes: ["infer"] }, { name: "b", key: "k".repeat(16), scopes: ["infer"] }] }, /^auth\.keys\[1\] has the same key/],
  ];
  for (const [name, auth, expected] of authMistakes) {
    it(`refuses auth with ${name}, never showing the key`, () => {
      assert.throws(
        () => parseConfig({ ...valid(), auth }, "/"),
        (error: unknown) => error instanceof ConfigError && expected.test(error.message) && !error.message.includes("k".repeat(16)),
      );
    });
  }

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
    ["metrics_auth without keys", (d) => ({ ...d, telemetry: { metrics_port: 9464, metrics_auth: true } }), /^telemetry\.metrics_auth asks scrapers for an API key, but auth\.keys lists none: add a key with scopes \[metrics\]/],
    ["metrics_auth a string", (d) => ({ ...d, telemetry: { metrics_auth: "yes" } }), /^telemetry\.metrics_auth must be true or false$/],
    ["max_downloads 0", (d) => ({ ...d, placement: { max_downloads: 0 } }), /^placement\.max_downloads must be a whole number from 1 to 16$/],
    ["max_downloads 2.5", (d) => ({ ...d, placement: { max_downloads: 2.5 } }), /^placement\.max_downloads must be a whole number from 1 to 16$/],
    ["replicas max < min", (d) => ({ ...d, models: [{ ...d.models[0], replicas: { min: 3, max: 2 } }] }), /^models\[0\]\.replicas\.max must be >= replicas\.min/],
    ["temperature out of range", (d) => ({ ...d, models: [{ ...d.models[0], sampling: { temperature: 5 } }] }), /^models\[0\]\.sampling\.temperature must be a number from 0 to 2$/],
    ["route to unknown model", (d) => ({ ...d, routes: { code: ["coder"] } }), /^routes\.code\[0\] names unknown model "coder"/],
    ["bad gpu", (d) => ({ ...d, models: [{ ...d.models[0], gpu: "tpu" }] }), /^models\[0\]\.gpu must be one of/],
    ["gpu_layers negative", (d) => ({ ...d, models: [{ ...d.models[0], gpu_layers: -1 }] }), /^models\[0\]\.gpu_layers must be auto \(as many layers as fit on the GPU\) or a number of layers, 0 for CPU only/],
    ["gpu_layers a word", (d) => ({ ...d, models: [{ ...d.models[0], gpu_layers: "all" }] }), /^models\[0\]\.gpu_layers must be auto/],
    ["gpu_layers with gpu: cpu", (d) => ({ ...d, models: [{ ...d.models[0], gpu: "cpu", gpu_layers: 10 }] }), /^models\[0\]\.gpu_layers offloads layers to a GPU but models\[0\]\.gpu is cpu/],
    ["bad defaults.gpu_layers", (d) => ({ ...d, defaults: { gpu_layers: 1.5 } }), /^models\[0\]\.gpu_layers must be auto/],
    ["bad gpu_budget", (d) => ({ ...d, gpu_budget: "lots" }), /^gpu_budget must be a size like 5GiB or a percentage of free GPU memory like 80%/],
    ["gpu_budget over 100%", (d) => ({ ...d, gpu_budget: "120%" }), /^gpu_budget must be/],
    ["bad unified_memory", (d) => ({ ...d, unified_memory: "yes" }), /^unified_memory must be auto \(detect a Jetson\), true \(CPU and GPU share memory\) or false/],
    ["source without quantisation", (d) => ({ ...d, models: [{ ...d.models[0], path: "hf:user/repo" }] }), /^models\[0\]\.path must say which quantisation to pull/],
    ["empty models_dir", (d) => ({ ...d, models_dir: "" }), /^models_dir must be a non-empty string$/],
    ["sha256 of a local file", (d) => ({ ...d, models: [{ ...d.models[0], sha256: "a".repeat(64) }] }), /^models\[0\]\.sha256 checks a download: path must then be a source/],
    ["sha256 not hex", (d) => ({ ...d, models: [{ ...d.models[0], path: "hf:user/repo:Q8_0", sha256: "abc" }] }), /^models\[0\]\.sha256 must be 64 hex digits \(got "abc"\)/],
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
