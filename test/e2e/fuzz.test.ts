import { Metadata, status, type Client } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { LoadModelRequest, PinModelRequest } from "../../gen/modelswap/v1/admin.js";
import { ChatRequest, GenerateRequest } from "../../gen/modelswap/v1/inference.js";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, freePortPair, startProcess, type WatchedProcess } from "../support/processes.js";
import { bearer, rawClient, rawServerStream, rawUnary, type RawResult } from "../support/raw-grpc.js";

const GRPC_REQUESTS = 2000;
const HTTP_REQUESTS = 1000;
const CONCURRENCY = 16;
const KEY = "fuzz-key-0123456789abcdef";
const SEED = Number(process.env.MODELSWAP_FUZZ_SEED ?? Date.now() % 1_000_000);

/** A small seeded generator (mulberry32): a failing run repeats with MODELSWAP_FUZZ_SEED. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
  const bytes = (length: number) => Buffer.from(Array.from({ length }, () => int(0, 255)));
  return { next, int, pick, bytes, chance: (p: number) => next() < p };
}
type Random = ReturnType<typeof random>;

/** One odd string: empty, catalog names, Object.prototype names, control characters, lone surrogates, long and huge. */
function oddString(r: Random): string {
  const makers: (() => string)[] = [
    () => "",
    () => "stories",
    () => "tiny",
    () => r.pick(["constructor", "__proto__", "toString", "hasOwnProperty"]),
    () => "../../etc/passwd",
    () => "\u0000\u0001\u0002",
    () => "\ud800",
    () => "🙂".repeat(r.int(1, 200)),
    () => "x".repeat(r.int(200, 400)),
    () => "m".repeat(r.int(10_000, 120_000)),
    () => "m".repeat(r.chance(0.2) ? 1024 * 1024 : 300),
    () => r.bytes(r.int(1, 64)).toString("latin1"),
  ];
  return r.pick(makers)();
}

async function pool(count: number, concurrency: number, run: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await run(next++);
  }));
}

/** Malformed gRPC calls: random bytes, wrong wire types, odd and huge strings, bad numbers, bad metadata. */
function grpcCase(r: Random): { path: string; body: Buffer; metadata: Metadata; streaming: boolean } {
  const odd = () => oddString(r);
  const oddNumber = () => r.pick([0, -1, 1, 3, 2 ** 31 - 1, -(2 ** 31), NaN, Infinity, -Infinity, 1e-30, 0.5, 2.5]);
  const sampling = () =>
    r.chance(0.5)
      ? undefined
      : { temperature: oddNumber(), topK: r.pick([0, -5, 40, 2 ** 31 - 1]), topP: oddNumber(), minP: oddNumber(), repeatPenalty: oddNumber(), seed: r.int(0, 2 ** 32 - 1), stop: Array.from({ length: r.int(0, 10) }, odd), ignoreEos: r.chance(0.2) };
  const methods = [
    ["/modelswap.v1.Inference/Generate", true],
    ["/modelswap.v1.Inference/Chat", true],
    ["/modelswap.v1.Inference/ListModels", false],
    ["/modelswap.v1.Admin/GetStatus", false],
    ["/modelswap.v1.Admin/LoadModel", false],
    ["/modelswap.v1.Admin/PinModel", false],
    ["/modelswap.v1.Nope/Missing", false],
  ] as const;
  const [path, streaming] = r.pick(methods);
  let body: Buffer;
  const kind = r.int(0, 9);
  if (kind <= 2) body = r.bytes(r.int(0, 2048)); // random bytes
  else if (path.endsWith("/Chat")) {
    body = Buffer.from(ChatRequest.encode({ model: r.chance(0.5) ? "stories" : odd(), task: r.chance(0.3) ? odd() : "", messages: r.chance(0.1) ? Array.from({ length: 300 }, () => ({ role: "user", content: "hi" })) : Array.from({ length: r.int(0, 2) }, () => ({ role: r.chance(0.7) ? r.pick(["user", "system", "assistant"]) : odd(), content: r.chance(0.9) ? "Once upon a time" : odd() })), maxTokens: r.pick([1, 2, 4, oddNumber() | 0]), sampling: sampling(), resumable: r.chance(0.5) }).finish());
  } else if (path.endsWith("/LoadModel")) body = Buffer.from(LoadModelRequest.encode({ model: odd() === "stories" ? "nope" : odd() }).finish());
  else if (path.endsWith("/PinModel")) body = Buffer.from(PinModelRequest.encode({ model: "nope-" + r.int(0, 9), pinned: r.chance(0.5) }).finish());
  else body = Buffer.from(GenerateRequest.encode({ model: r.chance(0.5) ? "stories" : odd(), task: r.chance(0.3) ? odd() : "", prompt: r.chance(0.8) ? "Once upon a time" : odd(), maxTokens: r.pick([1, 2, 4, oddNumber() | 0]), sampling: sampling(), resumable: r.chance(0.5) }).finish());
  if (kind === 9 && body.length > 0) {
    // flip or cut: wrong wire types and truncated fields
    body = Buffer.from(body);
    for (let flips = r.int(1, 4); flips > 0; flips--) body[r.int(0, body.length - 1)] = r.int(0, 255);
    if (r.chance(0.5)) body = body.subarray(0, r.int(0, body.length));
  }
  const metadata = r.chance(0.85) ? bearer(KEY) : new Metadata();
  if (r.chance(0.1)) metadata.set("authorization", r.pick(["Bearer", "Bearer  ", "Basic abc", `Bearer ${KEY}x`, `bearer ${KEY}`, "Bearer " + "k".repeat(4000), r.bytes(20).toString("hex")]));
  if (r.chance(0.1)) metadata.set(`x-odd-${r.int(0, 99)}`, r.bytes(r.int(0, 40)).toString("base64"));
  if (r.chance(0.05)) metadata.set("odd-bin", r.bytes(r.int(0, 300)));
  if (r.chance(0.05)) metadata.set("traceparent", r.pick(["00-zz-yy-01", "garbage", "00-" + "0".repeat(32) + "-" + "0".repeat(16) + "-01"]));
  return { path, body, metadata, streaming };
}

interface HttpOutcome {
  status: number;
}

/** Malformed HTTP requests: bad JSON, wrong types, huge bodies, odd headers, methods and paths; some abandoned mid-stream. */
function httpCase(r: Random): { method: string; path: string; headers: Record<string, string>; body: string | Buffer | undefined; abandon: boolean } {
  const value = (): unknown => r.pick<unknown>([null, true, 0, -1, 1e308, "x", "", [], {}, [1, "a"], { a: 1 }, "m".repeat(r.int(300, 20_000)), NaN]);
  const skeleton: Record<string, unknown> = r.chance(0.5)
    ? { model: "stories", messages: [{ role: "user", content: "Once upon a time" }], max_tokens: r.int(1, 4) }
    : { model: "tiny", prompt: "Once upon a time", max_tokens: r.int(1, 4) };
  const fields = ["model", "messages", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "stream_options", "n", "task", "top_k", "ignore_eos", "logprobs", "tools", "response_format", "max_completion_tokens"];
  for (let changes = r.int(0, 3); changes > 0; changes--) skeleton[r.pick(fields)] = value();
  if (r.chance(0.2)) skeleton.stream = true;
  let body: string | Buffer | undefined = JSON.stringify(skeleton);
  const kind = r.int(0, 19);
  if (kind === 0) body = r.bytes(r.int(0, 500));
  else if (kind === 1) body = body.slice(0, r.int(0, body.length));
  else if (kind === 2) body = "x".repeat(r.pick([300_000, 1024 * 1024]));
  else if (kind === 3) body = '{"__proto__": {"model": "x"}, "constructor": {"prototype": {}}}';
  else if (kind === 4) body = JSON.stringify(value());
  else if (kind === 5) body = undefined;
  const headers: Record<string, string> = { "content-type": r.chance(0.9) ? "application/json" : r.pick(["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "multipart/form-data", "*/*"]) };
  if (r.chance(0.9)) headers.authorization = `Bearer ${KEY}`;
  else if (r.chance(0.5)) headers.authorization = r.pick(["Bearer", "Basic abc", `Bearer ${KEY} extra`, "Bearer " + "k".repeat(5000)]);
  if (r.chance(0.1)) headers["x-odd"] = r.bytes(30).toString("base64");
  if (r.chance(0.05)) headers.traceparent = "00-bad";
  if (r.chance(0.05)) headers["content-encoding"] = r.pick(["gzip", "br", "nope"]);
  const path = r.chance(0.85)
    ? r.pick(["/v1/chat/completions", "/v1/completions"])
    : r.pick(["/v1/models", "/v1/models/tiny", "/v1/models/%00", "/v1/models/" + "m".repeat(2000), "/v1/../../etc/passwd", "/v1/embeddings", "/health", "/", "/v1/chat/completions?x=1&x=2", "/%E0%A4%A"]);
  const method = path.startsWith("/v1/models") || path === "/health" || path === "/" ? r.pick(["GET", "GET", "POST", "DELETE"]) : r.pick(["POST", "POST", "POST", "GET", "PUT", "OPTIONS"]);
  return { method, path, headers, body, abandon: r.chance(0.05) };
}

function sendHttp(agent: Agent, port: number, c: ReturnType<typeof httpCase>): Promise<HttpOutcome | undefined> {
  return new Promise((resolve) => {
    let call: ReturnType<typeof httpRequest>;
    try {
      call = httpRequest({ host: "127.0.0.1", port, agent, method: c.method, path: c.path, headers: c.headers, timeout: 30_000 }, (response) => {
        if (c.abandon) {
          call.destroy();
          return resolve({ status: response.statusCode! });
        }
        response.resume();
        response.on("end", () => resolve({ status: response.statusCode! }));
        response.on("error", () => resolve({ status: response.statusCode! }));
      });
    } catch {
      return resolve(undefined); // a header the client itself refuses to send
    }
    call.on("error", () => resolve(undefined));
    call.end(c.body);
  });
}

/** Raw bytes on a socket: header lines no HTTP client would send. Resolves with the status line's code, if any. */
function sendRawHttp(port: number, text: Buffer): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk) => (received += chunk.toString("latin1")));
    socket.on("error", () => resolve(undefined));
    socket.on("close", () => resolve(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ? Number(/^HTTP\/1\.1 (\d{3})/.exec(received)![1]) : undefined));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.end(text);
  });
}

/** Thousands of malformed requests at one real `modelswap serve` with the real model: nothing crashes, nothing internal leaks. */
describe(`fuzzing the public gRPC and HTTP doors (seed ${SEED})`, function () {
  this.timeout(120_000);
  let directory: string;
  let server: WatchedProcess;
  let port: number;
  let grpc: Client;

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-fuzz-"));
    port = await freePortPair();
    const config = path.join(directory, "config.yaml");
    writeFileSync(
      config,
      [
        `listen: 127.0.0.1:${port}`,
        `http: {listen: "127.0.0.1:${port + 1}"}`,
        `auth: {keys: [{name: fuzzer, key: ${KEY}, scopes: [infer, admin]}]}`,
        "budget: 1GiB",
        "placement: {listen: 127.0.0.1:0, queue_timeout: 20s}",
        "models:",
        `  - {name: stories, path: "${storiesModel}", context: 512, threads: 1, sequences: 4, aliases: [tiny], tasks: [story], preload: true}`,
      ].join("\n"),
    );
    server = startProcess([CLI_MAIN, "serve", "-c", config], { ...process.env, MODELSWAP_LOG: "silent" });
    await server.waitForLine((line) => (line.startsWith("modelswap serving on") ? true : undefined));
    grpc = rawClient(`127.0.0.1:${port}`);
  });
  after(async () => {
    grpc?.close();
    await server?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it(`answers ${GRPC_REQUESTS} malformed gRPC calls with no INTERNAL or UNKNOWN, and serves after`, async () => {
    const r = random(SEED);
    const codes = new Map<number, number>();
    const bad: string[] = [];
    await pool(GRPC_REQUESTS, CONCURRENCY, async () => {
      const c = grpcCase(r);
      const result: RawResult = c.streaming ? await rawServerStream(grpc, c.path, c.body, c.metadata) : await rawUnary(grpc, c.path, c.body, c.metadata);
      const code = result.error?.code ?? status.OK;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (code === status.INTERNAL || code === status.UNKNOWN) bad.push(`${c.path} -> ${status[code]}: ${result.error!.details.slice(0, 200)}`);
    });
    console.log(`      gRPC statuses (seed ${SEED}): ${JSON.stringify(Object.fromEntries([...codes].map(([code, n]) => [status[code], n])))}`);
    assert.deepEqual(bad.slice(0, 10), [], `seed ${SEED}: ${bad.length} calls got INTERNAL/UNKNOWN`);
    assert.equal(server.child.exitCode, null, "serve is still running");
    assert.ok((codes.get(status.INVALID_ARGUMENT) ?? 0) > 0 && (codes.get(status.UNAUTHENTICATED) ?? 0) > 0, JSON.stringify([...codes]));
    // a normal request is served after
    const after = await rawServerStream(grpc, "/modelswap.v1.Inference/Generate", Buffer.from(GenerateRequest.encode({ model: "stories", prompt: "Once upon a time", maxTokens: 8, task: "", resumable: false }).finish()), bearer(KEY));
    assert.equal(after.error, undefined, after.error?.details);
    assert.ok(after.messages.length > 1);
  });

  it(`answers ${HTTP_REQUESTS} malformed HTTP requests with no 500, and serves after`, async () => {
    const r = random(SEED + 1);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    await pool(HTTP_REQUESTS, CONCURRENCY, async (index) => {
      let code: number | undefined;
      if (index % 50 === 0) {
        // odd header lines on a raw socket
        const line = r.pick(["X-Bad\u0000: 1", "Authorization: Bearer \u00ff\u00fe", "Content-Length: -5", "Transfer-Encoding: chunked, identity", "Content-Length: 5\r\nContent-Length: 6", "x".repeat(20_000) + ": y"]);
        code = await sendRawHttp(port + 1, Buffer.from(`POST /v1/completions HTTP/1.1\r\nHost: x\r\n${line}\r\nContent-Type: application/json\r\n\r\n{}`, "latin1"));
      } else {
        const c = httpCase(r);
        code = (await sendHttp(agent, port + 1, c))?.status;
        if (code !== undefined && code >= 500 && code !== 503) bad.push(`${c.method} ${c.path.slice(0, 60)} ${String(c.body).slice(0, 80)} -> ${code}`);
      }
      if (code !== undefined) statuses.set(code, (statuses.get(code) ?? 0) + 1);
    });
    agent.destroy();
    console.log(`      HTTP statuses (seed ${SEED}): ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual(bad.slice(0, 10), [], `seed ${SEED}: ${bad.length} requests got a 5xx`);
    assert.equal(statuses.get(500), undefined);
    assert.equal(server.child.exitCode, null, "serve is still running");
    assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(200) ?? 0) > 0, JSON.stringify([...statuses]));
    // a normal request is served after, and nothing unexpected was logged
    const fine = await sendHttp(new Agent(), port + 1, { method: "POST", path: "/v1/completions", headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: "tiny", prompt: "Once", max_tokens: 4 }), abandon: false });
    assert.equal(fine?.status, 200);
    assert.deepEqual(server.stderr.filter((line) => line.includes("unexpected_error")).slice(0, 5), []);
  });
});
