import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { AdminClient, type StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { GenerateRequest, InferenceClient, ModelState, type GenerateResponse, type ListModelsResponse } from "../../gen/modelswap/v1/inference.js";
import { generateRequest, startCluster, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, cli, freePortPair, startProcess, type WatchedProcess } from "../support/processes.js";
import { bearer, rawClient, rawServerStream, rawUnary } from "../support/raw-grpc.js";
import { writeSelfSignedCert } from "../support/self-signed-cert.js";

const INFER_KEY = "infer-key-0123456789abcdef";
const ADMIN_KEY = "admin-key-0123456789abcdef";
const METRICS_KEY = "metrics-key-0123456789abcdef";

interface Streamed {
  tokens: number;
  done: boolean;
  error: ServiceError | undefined;
}

function stream(client: InferenceClient, request: GenerateRequest, key: string | undefined): Promise<Streamed> {
  const call = client.generate(request, key ? bearer(key) : new Metadata());
  const result: Streamed = { tokens: 0, done: false, error: undefined };
  return new Promise((resolve) => {
    call.on("data", (message: GenerateResponse) => {
      if (message.event?.$case === "token") result.tokens += message.event.value.tokens;
      if (message.event?.$case === "done") result.done = true;
    });
    call.on("error", (error: ServiceError) => resolve({ ...result, error }));
    call.on("end", () => resolve(result));
  });
}

function unaryError<Res>(invoke: (callback: (error: ServiceError | null, response: Res) => void) => void): Promise<{ error: ServiceError | null; response: Res }> {
  return new Promise((resolve) => invoke((error, response) => resolve({ error, response })));
}

/** An operator turns on keys; users and intruders knock on the gRPC door. */
describe("API keys, scopes and bounded input at the gRPC gateway (real runner)", function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let inference: InferenceClient;
  let admin: AdminClient;

  before(async () => {
    cluster = await startCluster({
      budget: "1GiB",
      auth: { keys: [{ name: "alice", key: INFER_KEY, scopes: ["infer"] }, { name: "ops", key: ADMIN_KEY, scopes: ["infer", "admin"] }] },
      models: [
        { name: "stories", path: storiesModel, context: 512, threads: 1, sequences: 4, tasks: ["story"], preload: true },
        { name: "cold", path: storiesModel, context: 512, threads: 1 },
      ],
    });
    await cluster.waitForEvent((event) => event.kind === "loaded" && event.model === "stories");
    inference = new InferenceClient(cluster.gateway.address, credentials.createInsecure());
    admin = new AdminClient(cluster.gateway.address, credentials.createInsecure());
  });
  after(async () => {
    inference?.close();
    admin?.close();
    await cluster?.stop();
  });

  it("gives Admin calls with an infer key PERMISSION_DENIED, and serves them with an admin key", async () => {
    const denied = await unaryError<StatusResponse>((cb) => admin.getStatus({}, bearer(INFER_KEY), cb));
    assert.equal(denied.error?.code, status.PERMISSION_DENIED);
    assert.match(denied.error!.details, /the key "alice" may not call Admin\/GetStatus: that needs the "admin" scope/);
    const load = await unaryError((cb) => admin.loadModel({ model: "cold" }, bearer(INFER_KEY), cb));
    assert.equal(load.error?.code, status.PERMISSION_DENIED);
    const allowed = await unaryError<StatusResponse>((cb) => admin.getStatus({}, bearer(ADMIN_KEY), cb));
    assert.equal(allowed.error, null);
    assert.ok(allowed.response.models.length === 2);
    assert.ok(!cluster.events.some((event) => event.model === "cold"), "the refused LoadModel did nothing");
  });

  it("refuses calls without a key or with a wrong one as UNAUTHENTICATED, before any lookup or lease", async () => {
    const missing = await stream(inference, generateRequest({ model: "cold", maxTokens: 4 }), undefined);
    assert.equal(missing.error?.code, status.UNAUTHENTICATED);
    assert.match(missing.error!.details, /authorization: Bearer <key>.*MODELSWAP_API_KEY/);
    const wrong = await stream(inference, generateRequest({ model: "cold", maxTokens: 4 }), "wrong-key-0123456789abcdef");
    assert.equal(wrong.error?.code, status.UNAUTHENTICATED);
    assert.match(wrong.error!.details, /API key is not valid/);
    // an unknown model with no key is refused for the key, not looked up
    const unknown = await stream(inference, generateRequest({ model: "nope", maxTokens: 4 }), undefined);
    assert.equal(unknown.error?.code, status.UNAUTHENTICATED);
    const raw = rawClient(cluster.gateway.address);
    const badScheme = new Metadata();
    badScheme.set("authorization", "Basic YWxpY2U6c2VjcmV0");
    const basic = await rawServerStream(raw, "/modelswap.v1.Inference/Generate", Buffer.from(GenerateRequest.encode(generateRequest({ model: "cold" })).finish()), badScheme);
    raw.close();
    assert.equal(basic.error?.code, status.UNAUTHENTICATED);
    assert.match(basic.error!.details, /must be "Bearer <key>"/);
    // nothing was loaded for "cold": none of the refused requests reached placement
    assert.ok(!cluster.events.some((event) => event.model === "cold"), "a refused request caused work");
    const models = await unaryError<ListModelsResponse>((cb) => inference.listModels({}, bearer(INFER_KEY), cb));
    assert.equal(models.response.models.find((model) => model.name === "cold")!.state, ModelState.MODEL_STATE_NOT_LOADED);
  });

  it("keeps health and reflection open without a key", async () => {
    const raw = rawClient(cluster.gateway.address);
    try {
      const health = await rawUnary(raw, "/grpc.health.v1.Health/Check", Buffer.alloc(0));
      assert.equal(health.error, undefined);
      assert.deepEqual([...health.messages[0]!], [0x08, 0x01]); // status: SERVING
      // ServerReflectionRequest{list_services: "*"}
      const reflection = await new Promise<Buffer>((resolve, reject) => {
        const call = raw.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", (b: Buffer) => b, (b: Buffer) => b);
        call.once("data", (message: Buffer) => {
          resolve(message);
          call.end();
        });
        call.once("error", reject);
        call.write(Buffer.from([0x3a, 0x01, 0x2a]));
      });
      assert.ok(reflection.includes("modelswap.v1.Admin"), "reflection lists the services");
    } finally {
      raw.close();
    }
  });

  it("answers tasks named like Object.prototype members with NOT_FOUND", async () => {
    for (const task of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const result = await stream(inference, generateRequest({ task, maxTokens: 4 }), INFER_KEY);
      assert.equal(result.error?.code, status.NOT_FOUND, `${task}: ${result.error?.details}`);
      assert.match(result.error!.details, new RegExp(`task "${task}" has no route; known tasks: story`));
    }
  });

  it("refuses 1 MB and 100 KB model names at once while another client streams undisturbed", async () => {
    // arrange: a long stream in flight
    const long = stream(inference, generateRequest({ model: "stories", maxTokens: 400, sampling: { ignoreEos: true, stop: [] } }), INFER_KEY);
    // act: oversized names from other clients
    const huge = Array.from({ length: 8 }, () => stream(inference, generateRequest({ model: "m".repeat(1024 * 1024) }), INFER_KEY));
    const large = Array.from({ length: 8 }, () => stream(inference, generateRequest({ model: "m".repeat(100 * 1024) }), INFER_KEY));
    const task = stream(inference, generateRequest({ task: "t".repeat(100 * 1024) }), INFER_KEY);
    // assert
    for (const result of await Promise.all(huge)) {
      assert.equal(result.error?.code, status.RESOURCE_EXHAUSTED, result.error?.details);
      assert.match(result.error!.details, /larger than max/);
    }
    for (const result of [...(await Promise.all(large)), await task]) {
      assert.equal(result.error?.code, status.INVALID_ARGUMENT, result.error?.details);
      assert.match(result.error!.details, /is 102400 bytes; names are at most 256 bytes/);
    }
    const streamed = await long;
    assert.equal(streamed.error, undefined, streamed.error?.details);
    assert.equal(streamed.tokens, 400);
    assert.ok(streamed.done);
  });

  it("answers bytes that are not a request message with INVALID_ARGUMENT, not INTERNAL", async () => {
    const raw = rawClient(cluster.gateway.address);
    try {
      const result = await rawServerStream(raw, "/modelswap.v1.Inference/Generate", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), bearer(INFER_KEY));
      assert.equal(result.error?.code, status.INVALID_ARGUMENT, result.error?.details);
      assert.match(result.error!.details, /not a valid modelswap\.v1\.GenerateRequest message/);
    } finally {
      raw.close();
    }
  });
});

/** `modelswap serve` with keys from the environment and TLS, and the CLI calling it. */
describe("modelswap serve with TLS and keys from the environment, and the CLI", function () {
  this.timeout(90_000);
  let directory: string;
  let server: WatchedProcess;
  let port: number;
  let metricsPort: number;
  let env: NodeJS.ProcessEnv;
  let cert: string;

  const config = (lines: string[]) => {
    const file = path.join(directory, `config-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, [...lines, "budget: 1GiB", "placement: {listen: 127.0.0.1:0}", "models:", `  - {name: stories, path: "${storiesModel}", context: 512, threads: 1, tasks: [story], preload: true}`].join("\n"));
    return file;
  };

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-security-"));
    ({ cert } = writeSelfSignedCert(directory));
    [port, metricsPort] = await Promise.all([freePortPair(), freePortPair()]);
    const file = config([
      `listen: 127.0.0.1:${port}`,
      `http: {listen: "127.0.0.1:${port + 1}"}`,
      "tls: {cert: cert.pem, key: key.pem}",
      `telemetry: {metrics_port: ${metricsPort}, metrics_auth: true}`,
      "auth:",
      "  keys:",
      "    - {name: alice, key_env: MODELSWAP_KEY_ALICE, scopes: [infer]}",
      "    - {name: ops, key_env: MODELSWAP_KEY_OPS, scopes: [infer, admin]}",
      "    - {name: prometheus, key_env: MODELSWAP_KEY_PROMETHEUS, scopes: [metrics]}",
    ]);
    env = {
      ...process.env,
      MODELSWAP_LOG: "silent",
      MODELSWAP_ADDRESS: `127.0.0.1:${port}`,
      MODELSWAP_KEY_ALICE: INFER_KEY,
      MODELSWAP_KEY_OPS: ADMIN_KEY,
      MODELSWAP_KEY_PROMETHEUS: METRICS_KEY,
    };
    server = startProcess([CLI_MAIN, "serve", "-c", file], env);
    await server.waitForLine((line) => (line.startsWith("modelswap serving on") ? true : undefined));
  });
  after(async () => {
    await server?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("refuses to start on a non-loopback address without auth, and says how to fix it", async () => {
    // (http.listen and the other cases: test/unit/config.test.ts)
    const open = await cli(["serve", "-c", config(["listen: 0.0.0.0:0"])], env);
    assert.equal(open.code, 1, open.stderr);
    assert.match(open.stderr, /^listen is 0\.0\.0\.0:0, reachable from other hosts, and no auth is configured: add auth\.keys.*allow_unauthenticated_public: true/);
    const missingKey = await cli(["serve", "-c", config(["listen: 0.0.0.0:0", "auth: {keys: [{name: bob, key_env: MODELSWAP_KEY_BOB, scopes: [infer]}]}"])], env);
    assert.equal(missingKey.code, 1);
    assert.match(missingKey.stderr, /key_env names MODELSWAP_KEY_BOB, which is not set/);
  });

  it("streams over TLS with the CA and a key from the environment; refuses without them", async () => {
    const ok = await cli(["generate", "-m", "stories", "-n", "16", "Once upon a time"], { ...env, MODELSWAP_API_KEY: INFER_KEY, MODELSWAP_TLS_CA: cert });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /\[stories: (length|stop); \d+ prompt( \(\d+ cached\))? \+ \d+ completion tokens/);
    const withFlags = await cli(["models", "--api-key", INFER_KEY, "--tls-ca", cert], env);
    assert.equal(withFlags.code, 0, withFlags.stderr);
    assert.match(withFlags.stdout, /^stories\s/m);
    const plaintext = await cli(["models", "--api-key", INFER_KEY], env, 10_000);
    assert.equal(plaintext.code, 1);
    const noKey = await cli(["models", "--tls-ca", cert], env);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /needs an API key.*--api-key or MODELSWAP_API_KEY/);
  });

  it("answers --task constructor with NOT_FOUND and admin commands with an infer key with PERMISSION_DENIED", async () => {
    const keyed = { ...env, MODELSWAP_API_KEY: INFER_KEY, MODELSWAP_TLS_CA: cert };
    const task = await cli(["generate", "--task", "constructor", "hi"], keyed);
    assert.equal(task.code, 1);
    assert.match(task.stderr, /error: task "constructor" has no route; known tasks: story/);
    const ps = await cli(["ps"], keyed);
    assert.equal(ps.code, 1);
    assert.match(ps.stderr, /may not call Admin\/GetStatus: that needs the "admin" scope/);
    const asOps = await cli(["ps"], { ...keyed, MODELSWAP_API_KEY: ADMIN_KEY });
    assert.equal(asOps.code, 0, asOps.stderr);
  });

  it("serves the HTTP API over TLS", async () => {
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      httpsGet({ host: "127.0.0.1", port: port + 1, path: "/v1/models", ca: readFileSync(cert), headers: { authorization: `Bearer ${INFER_KEY}` } }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk));
        response.on("end", () => resolve({ status: response.statusCode!, text }));
      }).on("error", reject);
    });
    assert.equal(body.status, 200);
    assert.equal((JSON.parse(body.text) as { data: { id: string }[] }).data[0]!.id, "stories");
  });

  it("with metrics_auth, lets only keys with the metrics (or admin) scope scrape /metrics", async () => {
    const scrape = async (port_: number, key?: string) => {
      const response = await fetch(`http://127.0.0.1:${port_}/metrics`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
      return { status: response.status, text: await response.text(), challenge: response.headers.get("www-authenticate") };
    };
    for (const endpoint of [metricsPort, metricsPort + 1]) {
      // placement on metrics_port, the gateway on metrics_port + 1
      const anonymous = await scrape(endpoint);
      assert.deepEqual([anonymous.status, anonymous.challenge], [401, "Bearer"], anonymous.text);
      assert.match(anonymous.text, /needs an API key/);
      const inferOnly = await scrape(endpoint, INFER_KEY);
      assert.equal(inferOnly.status, 403, inferOnly.text);
      assert.match(inferOnly.text, /the key "alice" may not call GET \/metrics: that needs the "metrics" scope/);
      for (const key of [METRICS_KEY, ADMIN_KEY]) {
        const allowed = await scrape(endpoint, key);
        assert.equal(allowed.status, 200, allowed.text);
        assert.match(allowed.text, /^modelswap_/m);
        assert.ok(!allowed.text.includes(METRICS_KEY) && !anonymous.text.includes(METRICS_KEY));
      }
    }
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`, { headers: { authorization: `Bearer ${METRICS_KEY}` } })).status, 404);
  });
});
