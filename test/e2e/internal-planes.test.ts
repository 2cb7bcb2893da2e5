import { credentials, Metadata, Server, ServerCredentials, status, type ServerDuplexStream, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { constants, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { internalCrypto } from "../../common/internal-auth/internal-crypto.js";
import { INTERNAL_METADATA } from "../../common/internal-auth/internal-metadata.js";
import { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import { authenticatedPlacementClient } from "../../common/internal-auth/placement-client.js";
import type { StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { parseConfig } from "../../common/config/parse-config.js";
import { createLogger } from "../../common/logger.js";
import { startGateway, type RunningGateway } from "../../gateway/gateway-server.js";
import { InferenceClient, ModelInfo, type ListModelsResponse } from "../../gen/modelswap/v1/inference.js";
import { PlacementClient, PlacementService, type AcquireEvent, type Lease } from "../../gen/modelswap/v1/placement.js";
import { GatewaySessions } from "../../services/placement/gateway-sessions.js";
import {
  RunnerControlClient,
  RunnerControlService,
  RunnerDataClient,
  RunnerDataService,
  type RunnerCommand,
  type RunnerEvent,
  type RunnerGenerateRequest,
  type RunnerGenerateResponse,
} from "../../gen/modelswap/v1/runner.js";
import { collect, generateRequest, startCluster, unary, type TestCluster } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, freePortPair, jsonLine, startProcess, type WatchedProcess } from "../support/processes.js";
import { rawClient, rawUnary } from "../support/raw-grpc.js";

const SECRET_TEXT = "TOP-SECRET-do-not-echo";

/** What a caller of RunnerControl/Connect saw: placement's headers, and how the call ended. */
interface ControlAttempt {
  headers: Metadata | undefined;
  commands: RunnerCommand[];
  error: ServiceError | undefined;
}

/** Dials placement's control port as a runner would, sends `events` once the headers arrive, and waits for the end. */
function dialControl(address: string, metadata: Metadata, events: (headers: Metadata) => RunnerEvent[]): Promise<ControlAttempt> {
  const client = new RunnerControlClient(address, credentials.createInsecure());
  const stream = client.connect(metadata, { deadline: Date.now() + 10_000 });
  const attempt: ControlAttempt = { headers: undefined, commands: [], error: undefined };
  return new Promise((resolve) => {
    stream.on("metadata", (headers: Metadata) => {
      attempt.headers = headers;
      for (const event of events(headers)) stream.write(event);
    });
    stream.on("data", (command: RunnerCommand) => attempt.commands.push(command));
    const done = () => {
      client.close();
      resolve(attempt);
    };
    stream.on("error", (error: ServiceError) => {
      attempt.error = error;
      done();
    });
    stream.on("end", done);
  });
}

function runnerMetadata(runnerId: string): Metadata {
  const metadata = new Metadata();
  metadata.set(INTERNAL_METADATA.runnerId, runnerId);
  metadata.set(INTERNAL_METADATA.nonce, internalCrypto.nonce());
  return metadata;
}

function hello(runnerId: string, authProof: string, hosted: { model: string; measuredBytes: number; gpuBytes: number }[]): RunnerEvent {
  return { event: { $case: "ready", value: { runnerId, pid: 4242, address: "127.0.0.1:9", rssBytes: 1, hosted, authProof } } };
}

/** One RunnerData/Generate straight to a runner: its token count, or how it was refused. */
function generateOnRunner(address: string, request: Partial<RunnerGenerateRequest>, leaseToken: string | undefined): Promise<{ tokens: number; error: ServiceError | undefined }> {
  const client = new RunnerDataClient(address, credentials.createInsecure());
  const metadata = new Metadata();
  if (leaseToken !== undefined) metadata.set(INTERNAL_METADATA.lease, leaseToken);
  const call = client.generate(
    { model: "stories", input: { $case: "prompt", value: "Once upon a time" }, maxTokens: 8, sampling: undefined, resumeText: "", ...request },
    metadata,
    { deadline: Date.now() + 20_000 },
  );
  const result = { tokens: 0, error: undefined as ServiceError | undefined };
  return new Promise((resolve) => {
    call.on("data", (message: RunnerGenerateResponse) => {
      if (message.event?.$case === "token") result.tokens = message.event.value.count;
    });
    call.on("error", (error: ServiceError) => {
      result.error = error;
      client.close();
      resolve(result);
    });
    call.on("end", () => {
      client.close();
      resolve(result);
    });
  });
}

const sampling = { temperature: 0.5, topK: 40, topP: 0.9, minP: 0.05, repeatPenalty: 1.1, seed: undefined, stop: [], ignoreEos: true };

/**
 * Placement's control port and the runners' ports are internal: only processes holding the
 * installation's secret (runners: a key derived from it) get anything there. An intruder on
 * the box knocks on every internal door.
 */
describe("internal planes: placement's port and runner ports refuse callers without the secret (real runner)", function () {
  this.timeout(90_000);
  let cluster: TestCluster;
  let directory: string;
  let realRunner: { id: string; address: string };

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-internal-"));
    const notGguf = path.join(directory, "notes.gguf");
    writeFileSync(notGguf, `${SECRET_TEXT}\n`);
    cluster = await startCluster({
      budget: "1GiB",
      placement: { spare_runners: 1, state_file: path.join(directory, "state.json") },
      models: [
        { name: "stories", path: storiesModel, context: 512, threads: 1, preload: true },
        { name: "notes", path: notGguf, context: 512, threads: 1 },
      ],
    });
    await cluster.waitForEvent((event) => event.kind === "loaded" && event.model === "stories");
    const status = await unary<StatusResponse>((cb) => cluster.admin.getStatus({}, cb));
    const runner = status.runners.find((candidate) => candidate.models.some((model) => model.name === "stories"))!;
    realRunner = { id: runner.id, address: runner.address };
  });
  after(async () => {
    await cluster?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("refuses a fake runner that claims a loaded model, even under a real runner's id, and users' prompts keep going to the real one", async () => {
    const address = cluster.placement.address;
    // no credentials at all
    const bare = await dialControl(address, new Metadata(), () => []);
    assert.equal(bare.error?.code, status.UNAUTHENTICATED);
    assert.match(bare.error!.details, /RunnerControl\/Connect is internal to modelswap \(no runner id and nonce\)/);
    // a new id, and the real runner's id: placement proves itself, the intruder cannot answer
    for (const runnerId of ["intruder-1", realRunner.id]) {
      const attempt = await dialControl(address, runnerMetadata(runnerId), () => [hello(runnerId, "0".repeat(64), [{ model: "stories", measuredBytes: 1, gpuBytes: 0 }])]);
      assert.ok(attempt.headers?.get(INTERNAL_METADATA.proof).length, "placement answers with its proof");
      assert.equal(attempt.error?.code, status.UNAUTHENTICATED, runnerId);
      assert.match(attempt.error!.details, /no valid hello/);
      assert.deepEqual(attempt.commands, [], "the intruder was sent nothing");
    }
    // every user request is served by the real runner: the intruder holds nothing and is not listed
    const results = await Promise.all(Array.from({ length: 10 }, () => collect(cluster.inference, generateRequest({ model: "stories", maxTokens: 8 }))));
    for (const result of results) assert.equal(result.error, undefined, result.error?.details);
    const after = await unary<StatusResponse>((cb) => cluster.admin.getStatus({}, cb));
    assert.deepEqual(after.runners.filter((runner) => runner.models.some((model) => model.name === "stories")).map((runner) => runner.id), [realRunner.id]);
    assert.ok(!after.runners.some((runner) => runner.id === "intruder-1"));
    assert.ok(!cluster.events.some((event) => event.runnerId === "intruder-1"));
  });

  it("refuses a direct lease and every admin call on placement's port without the gateway's session", async () => {
    const eventsBefore = cluster.events.length;
    const direct = new PlacementClient(cluster.placement.address, credentials.createInsecure());
    const forged = new Metadata();
    forged.set(INTERNAL_METADATA.session, `${internalCrypto.nonce()}.${"0".repeat(64)}`);
    try {
      for (const metadata of [new Metadata(), forged]) {
        const acquire = await new Promise<ServiceError | undefined>((resolve) => {
          const call = direct.acquire(metadata);
          call.write({ message: { $case: "request", value: { model: "stories", excludeRunners: [], waitDeadlineUnixMs: 0 } } });
          call.on("data", (event: AcquireEvent) => assert.fail(`a lease event reached the intruder: ${JSON.stringify(event)}`));
          call.on("error", resolve);
          call.on("end", () => resolve(undefined));
        });
        assert.equal(acquire?.code, status.UNAUTHENTICATED);
        assert.match(acquire!.details, /Placement\/Acquire is internal to modelswap \((no session|a session this placement process did not make)\)/);
        const unaryCalls: [string, (cb: (error: ServiceError | null) => void) => void][] = [
          ["GetStatus", (cb) => direct.getStatus({}, metadata, cb)],
          ["ListModels", (cb) => direct.listModels({}, metadata, cb)],
          ["LoadModel", (cb) => direct.loadModel({ model: "notes" }, metadata, cb)],
          ["UnloadModel", (cb) => direct.unloadModel({ model: "stories" }, metadata, cb)],
          ["PinModel", (cb) => direct.pinModel({ model: "stories", pinned: true }, metadata, cb)],
        ];
        for (const [name, invoke] of unaryCalls) {
          const error = await new Promise<ServiceError | null>((resolve) => invoke(resolve));
          assert.equal(error?.code, status.UNAUTHENTICATED, name);
        }
      }
      // a gateway with another installation's secret: placement's proof does not verify, so it sends nothing
      const stranger = authenticatedPlacementClient(cluster.placement.address, InternalSecret.random());
      const refused = await new Promise<ServiceError | null>((resolve) => stranger.getStatus({}, (error) => resolve(error)));
      stranger.close();
      assert.equal(refused?.code, status.UNAVAILABLE);
      assert.match(refused!.details, /did not prove it holds this installation's internal secret/);
      // health stays open (the gateway follows it)
      const raw = rawClient(cluster.placement.address);
      const health = await rawUnary(raw, "/grpc.health.v1.Health/Check", Buffer.alloc(0));
      raw.close();
      assert.deepEqual([...health.messages[0]!], [0x08, 0x01]);
    } finally {
      direct.close();
    }
    // nothing happened to any model: no wait, no load, no pin, no unload
    assert.deepEqual(cluster.events.slice(eventsBefore).filter((event) => event.model !== ""), []);
    const models = await unary<ListModelsResponse>((cb) => cluster.inference.listModels({}, cb));
    assert.equal(models.models.find((model) => model.name === "stories")!.pinned, false);
  });

  it("has runners refuse streams without a lease from their placement, and NaN or negative sampling", async () => {
    const secret = cluster.placement.internalSecret;
    const lease = { leaseId: "lease-test", model: "stories", runnerId: realRunner.id, runnerAddress: realRunner.address, queueMs: 0, loadMs: 0, defaultSampling: undefined, contextSize: 512, token: "" };
    const token = secret.signLease(lease, Date.now()).token;
    const refusals: [string, string | undefined, Partial<RunnerGenerateRequest>][] = [
      ["no token", undefined, {}],
      ["a token for another model", secret.signLease({ ...lease, model: "notes" }, Date.now()).token, {}],
      ["a token for another runner", secret.signLease({ ...lease, runnerId: "r-other" }, Date.now()).token, {}],
      ["another installation's token", InternalSecret.random().signLease(lease, Date.now()).token, {}],
      ["an expired token", secret.signLease(lease, Date.now() - 3600_000).token, {}],
    ];
    for (const [name, leaseToken, request] of refusals) {
      const result = await generateOnRunner(realRunner.address, request, leaseToken);
      assert.equal(result.error?.code, status.UNAUTHENTICATED, name);
      assert.match(result.error!.details, /this runner serves only holders of a lease from its placement/, name);
      assert.equal(result.tokens, 0);
    }
    const badSampling: [Partial<typeof sampling>, RegExp][] = [
      [{ temperature: Number.NaN }, /sampling\.temperature is NaN/],
      [{ topP: -0.5 }, /sampling\.top_p is -0\.5/],
      [{ minP: Number.POSITIVE_INFINITY }, /sampling\.min_p is Infinity/],
      [{ repeatPenalty: Number.NaN }, /sampling\.repeat_penalty is NaN/],
    ];
    for (const [values, expected] of badSampling) {
      const result = await generateOnRunner(realRunner.address, { sampling: { ...sampling, ...values } }, token);
      assert.equal(result.error?.code, status.INVALID_ARGUMENT, String(expected));
      assert.match(result.error!.details, expected);
    }
    // the lease holder with sane values is served
    const served = await generateOnRunner(realRunner.address, { sampling }, token);
    assert.equal(served.error, undefined, served.error?.details);
    assert.equal(served.tokens, 8);
    // the public model list names no runner address or pid
    const models = await unary<ListModelsResponse>((cb) => cluster.inference.listModels({}, cb));
    assert.doesNotMatch(JSON.stringify(models), new RegExp(realRunner.address.replace(/\./g, "\\.")));
  });

  it("answers a catalog file that is not a GGUF with what is wrong, never its bytes", async () => {
    const error = await new Promise<ServiceError | null>((resolve) => cluster.admin.loadModel({ model: "notes" }, (caught) => resolve(caught)));
    assert.equal(error?.code, status.FAILED_PRECONDITION);
    assert.match(error!.details, /notes\.gguf is not a GGUF file/);
    assert.doesNotMatch(error!.details, new RegExp(SECRET_TEXT));
    assert.ok(!cluster.events.some((event) => event.reason.includes(SECRET_TEXT)));
  });
});

/**
 * Placement dies; a process takes its port and speaks RunnerControl to the runners that
 * survived, ordering them to load files. They dial it (it is placement's address) but
 * obey nothing: it cannot prove it holds their key.
 */
describe("internal planes: after placement dies, a process on its port cannot command its runners (real processes)", function () {
  this.timeout(90_000);
  let directory: string;
  let placement: WatchedProcess | undefined;
  let fake: Server | undefined;
  let runnerPid: number | undefined;

  before(() => (directory = mkdtempSync(path.join(tmpdir(), "modelswap-squat-"))));
  after(async () => {
    await placement?.stop();
    if (runnerPid !== undefined) {
      try {
        process.kill(runnerPid, "SIGKILL");
      } catch {
        // it gave up on its own
      }
    }
    fake?.forceShutdown();
    rmSync(directory, { recursive: true, force: true });
  });

  it("gets no hello, no report and no file read from a runner, whose logs leak nothing", async () => {
    // arrange: placement (its own process) with a resident model in a runner
    const port = await freePortPair();
    const config = path.join(directory, "config.yaml");
    writeFileSync(config, [`listen: 127.0.0.1:${port + 1}`, "budget: 1GiB", `placement: {listen: "127.0.0.1:${port}", spare_runners: 0}`, "models:", `  - {name: stories, path: "${storiesModel}", context: 512, threads: 1, preload: true}`].join("\n"));
    placement = startProcess([CLI_MAIN, "placement", "-c", config, "--secret-file", path.join(directory, "secret")], { ...process.env, MODELSWAP_LOG: "" });
    const logs = placement;
    runnerPid = await logs.waitForLine((line) => {
      const entry = jsonLine(line);
      return entry?.event === "runner_listening" ? Number(entry.runnerPid) : undefined;
    });
    await logs.waitForLine((line) => (jsonLine(line)?.event === "residency_loaded" ? true : undefined));
    // bait: a FIFO (opening it to read would block, and show as a reader) and a file with a secret
    const fifo = path.join(directory, "bait.gguf");
    execFileSync("mkfifo", [fifo]);
    const secretFile = path.join(directory, "secret.txt");
    writeFileSync(secretFile, `${SECRET_TEXT}\n`);

    // act: placement dies; a fake RunnerControl server takes its port and orders loads and estimates
    placement.child.kill("SIGKILL");
    await new Promise((resolve) => placement!.child.once("exit", resolve));
    const linesBeforeFake = logs.stderr.length;
    let connects = 0;
    let reportsReceived = 0;
    fake = new Server();
    fake.addService(RunnerControlService, {
      connect: (stream: ServerDuplexStream<RunnerEvent, RunnerCommand>) => {
        connects++;
        stream.on("data", () => reportsReceived++);
        stream.on("error", () => undefined);
        const headers = new Metadata();
        headers.set(INTERNAL_METADATA.nonce, internalCrypto.nonce());
        headers.set(INTERNAL_METADATA.proof, "f".repeat(64));
        stream.sendMetadata(headers);
        const load = (model: string, file: string): RunnerCommand => ({
          command: { $case: "load", value: { model, path: file, contextSize: 512, sequences: 1, threads: 1, gpu: "cpu", warmUp: false, useMmap: false, gpuLayers: 0 } },
        });
        stream.write(load("bait", fifo));
        stream.write(load("shadow", "/etc/shadow"));
        stream.write({ command: { $case: "estimate", value: { requestId: "x", path: secretFile, contextSize: 512, sequences: 1, gpuLayers: 0 } } });
        stream.write({ command: { $case: "unload", value: { model: "stories" } } });
      },
    });
    await new Promise<void>((resolve, reject) => fake!.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())));
    // the runner dials the fake, refuses it, dials again: wait for its second refusal
    let refusals = 0;
    await logs.waitForLine((line) => (jsonLine(line)?.event === "placement_not_proven" && ++refusals >= 2 ? true : undefined), 20_000, true);

    // assert: the fake got nothing and nobody opened the FIFO; the runner still holds its model; no log line quotes the file
    assert.ok(connects >= 2, `the runner dialled the fake ${connects} times`);
    assert.equal(reportsReceived, 0, "no hello, heartbeat or report reached the fake");
    assert.throws(() => openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK), (error: NodeJS.ErrnoException) => error.code === "ENXIO", "no process has the FIFO open to read");
    const runnerLines = logs.stderr.slice(linesBeforeFake).map(jsonLine).filter((entry) => entry?.service === "runner");
    assert.ok(!runnerLines.some((entry) => ["model_load_failed", "model_loaded", "command_failed"].includes(String(entry!.event))), "the runner obeyed no command");
    assert.ok(!logs.stderr.some((line) => line.includes(SECRET_TEXT)));
    assert.doesNotThrow(() => process.kill(runnerPid!, 0), "the runner is alive (it waits for its own placement)");
  });
});

/**
 * A connection to placement was proven, then something else answers on it (a process that
 * took the port): its leases carry no token placement signed, so the gateway sends the
 * user's prompt nowhere.
 */
describe("internal planes: the gateway sends no prompt on a lease placement did not sign", function () {
  this.timeout(30_000);
  const servers: Server[] = [];
  let gateway: RunningGateway | undefined;
  after(async () => {
    await gateway?.stop();
    for (const server of servers) server.forceShutdown();
  });

  const serve = async (bind: (server: Server) => void): Promise<string> => {
    const server = new Server();
    bind(server);
    servers.push(server);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
    return `127.0.0.1:${port}`;
  };

  it("refuses the lease with UNAVAILABLE, and the runner address it names gets nothing", async () => {
    const secret = InternalSecret.random();
    const logger = createLogger("test", {}, { quiet: true });
    let promptsCaptured = 0;
    const trap = await serve((server) =>
      server.addService(RunnerDataService, {
        generate: (call: ServerWritableStream<RunnerGenerateRequest, RunnerGenerateResponse>) => {
          promptsCaptured++;
          call.end();
        },
      }),
    );
    const forgedLeases: Lease[] = [
      { leaseId: "lease-1", model: "stories", runnerId: "r1", runnerAddress: trap, queueMs: 0, loadMs: 0, defaultSampling: undefined, contextSize: 512, token: "" },
      secret.signLease({ leaseId: "lease-2", model: "stories", runnerId: "r1", runnerAddress: "127.0.0.1:1", queueMs: 0, loadMs: 0, defaultSampling: undefined, contextSize: 512, token: "" }, Date.now()),
    ];
    // the second lease was signed for another address; the impostor points it at its trap
    forgedLeases[1] = { ...forgedLeases[1]!, runnerAddress: trap };
    let served = 0;
    const impostor = await serve((server) => {
      const challenge = new GatewaySessions(secret, logger).challengeService(); // the handshake, as placement answered it
      server.addService(challenge.definition, challenge.implementation);
      server.addService(PlacementService, {
        acquire: (call: ServerWritableStream<unknown, AcquireEvent>) => call.write({ event: { $case: "granted", value: forgedLeases[served++ % 2]! } }),
        listModels: (_call: unknown, callback: (error: null, response: ListModelsResponse) => void) => callback(null, { models: [ModelInfo.fromPartial({ name: "stories", contextSize: 512 })] }),
        release: (_call: unknown, callback: (error: null, response: object) => void) => callback(null, {}),
      });
    });
    const config = parseConfig({ listen: "127.0.0.1:0", budget: "1GiB", models: [{ name: "stories", path: storiesModel }] }, "/");
    gateway = await startGateway({ config, placementAddress: impostor, internalSecret: secret, logger, listen: "127.0.0.1:0" });
    const inference = new InferenceClient(gateway.address, credentials.createInsecure());
    try {
      for (const expected of [/granted a lease with no lease token/, /granted a lease with a lease token that does not verify/]) {
        const result = await collect(inference, generateRequest({ model: "stories", prompt: "my bank password is hunter2", maxTokens: 4 }));
        assert.equal(result.error?.code, status.UNAVAILABLE, result.error?.details);
        assert.match(result.error!.details, expected);
      }
    } finally {
      inference.close();
    }
    assert.equal(served, 2);
    assert.equal(promptsCaptured, 0);
  });
});
