import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { forgeModel } from "../../forge/forge-model.js";
import { LoadingPhase, type GenerateResponse, type Loading } from "../../gen/modelswap/v1/inference.js";
import { collect, generateRequest, startCluster, unary, type StreamResult, type TestCluster } from "../support/cluster.js";
import { startModelServer, type ModelServer, type ServedRequest } from "../support/model-server.js";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, cli, freePortPair, startProcess } from "../support/processes.js";

const stories = readFileSync(storiesModel);
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const HF_FILE = "/ggml-org/stories-GGUF/resolve/main/stories260K-Q8_0.gguf";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

const loadingEvents = (result: StreamResult): Loading[] => result.events.flatMap((message) => (message.event?.$case === "loading" ? [message.event.value] : []));
const isDownloading = (message: GenerateResponse) => message.event?.$case === "loading" && message.event.value.phase === LoadingPhase.LOADING_PHASE_DOWNLOADING;

/**
 * A user configures `path: hf:…` (or a URL) and sends a request without pulling first: the
 * model host is an HTTP server on loopback (HF_ENDPOINT points hf: at it), models_dir is empty.
 */
describe("a model named by its source is downloaded on first use (gateway, placement, runner and download processes)", function () {
  this.timeout(120_000);
  let server: ModelServer;
  let directory: string;
  let cluster: TestCluster | undefined;
  const endpointBefore = process.env.HF_ENDPOINT;

  beforeEach(async () => {
    server = await startModelServer();
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-first-use-"));
    // The download process inherits placement's environment, as it would from the shell that started it.
    process.env.HF_ENDPOINT = `${server.url}/`;
  });
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
    await server.close();
    if (endpointBefore === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = endpointBefore;
    rmSync(directory, { recursive: true, force: true });
  });

  it("shows two concurrent requests one download's progress, then the load, then tokens; the next request uses the file", async () => {
    // arrange: the host holds the body at 400 kB until both requests have seen the download under way
    const resume = deferred();
    server.manifest("ggml-org", "stories-GGUF", "Q8_0", "stories260K-Q8_0.gguf");
    server.serve(HF_FILE, { bytes: stories, pauseAt: { byte: 400_000, until: resume.promise } });
    const modelsDir = path.join(directory, "models");
    cluster = await startCluster({
      budget: "1GiB",
      models_dir: modelsDir,
      models: [{ name: "stories", path: "hf:ggml-org/stories-GGUF:Q8_0", context: 512, threads: 1, sequences: 4 }],
    });
    const request = generateRequest({ model: "stories", maxTokens: 24, sampling: { temperature: 0, stop: [] } });
    // act
    const sawDownload = [deferred(), deferred()];
    const underWay = (message: GenerateResponse) => isDownloading(message) && (message.event as { value: Loading }).value.downloadedBytes > 0 && (message.event as { value: Loading }).value.downloadedBytes <= 400_000;
    const streams = sawDownload.map((seen) => collect(cluster!.inference, request, { onEvent: (message) => underWay(message) && seen.resolve() }));
    await Promise.all(sawDownload.map((seen) => seen.promise));
    resume.resolve();
    const results = await Promise.all(streams);

    // assert: each request saw the download to its last byte, then the load, then tokens
    for (const result of results) {
      assert.equal(result.error, undefined, result.error?.details);
      assert.ok(result.done && result.tokens > 0, "tokens after the download");
      const loading = loadingEvents(result);
      const downloads = loading.filter((event) => event.phase === LoadingPhase.LOADING_PHASE_DOWNLOADING);
      const loads = loading.filter((event) => event.phase === LoadingPhase.LOADING_PHASE_LOADING);
      assert.ok(downloads.length >= 1 && loads.length >= 1, JSON.stringify(loading));
      assert.deepEqual(
        loading.map((event) => event.phase),
        [...downloads.map(() => LoadingPhase.LOADING_PHASE_DOWNLOADING), ...loads.map(() => LoadingPhase.LOADING_PHASE_LOADING)],
        "every download event comes before the load's",
      );
      assert.ok(downloads.some((event) => event.downloadedBytes > 0 && event.downloadedBytes < stories.length && event.totalBytes === stories.length), "bytes done of the total, on the way");
      const last = downloads[downloads.length - 1]!;
      assert.deepEqual([last.downloadedBytes, last.totalBytes, last.progress], [stories.length, stories.length, 1]);
      for (const event of downloads) assert.ok(event.downloadedBytes <= stories.length && event.progress >= 0 && event.progress <= 1, JSON.stringify(event));
      assert.equal(loads[loads.length - 1]!.progress, 1);
      const firstToken = result.events.findIndex((message) => message.event?.$case === "token");
      const lastLoading = result.events.map((message) => message.event?.$case).lastIndexOf("loading");
      assert.ok(lastLoading < firstToken, "tokens come after loading");
    }
    // one download for both: the host saw one manifest lookup and one ranged GET of the file (the
    // downloader probes the file with a plain GET first), and placement one `downloading` event
    const gets = (predicate: (served: ServedRequest) => boolean) => server.requests.filter((served) => served.method === "GET" && predicate(served)).length;
    const hostRequests = () => [gets((served) => served.path.startsWith("/v2/ggml-org/stories-GGUF/manifests/")), gets((served) => served.path === HF_FILE && served.range !== undefined)];
    assert.deepEqual(hostRequests(), [1, 1], JSON.stringify(server.requests));
    const requestsAfterDownload = server.requests.length;
    assert.deepEqual(cluster.events.filter((event) => event.kind.startsWith("download")).map((event) => `${event.kind}:${event.model}`), ["downloading:stories", "downloaded:stories"]);
    assert.deepEqual(readdirSync(modelsDir).filter((name) => name.endsWith(".gguf")), ["hf_ggml-org_stories.Q8_0.gguf"]);
    assert.equal(sha256(readFileSync(path.join(modelsDir, "hf_ggml-org_stories.Q8_0.gguf"))), sha256(stories));

    const again = await collect(cluster.inference, request);
    assert.equal(again.error, undefined, again.error?.details);
    assert.ok(again.tokens > 0);
    assert.ok(!again.events.some(isDownloading), "the file is there: no download");
    assert.equal(server.requests.length, requestsAfterDownload, "nothing asked of the host");

    // someone deletes the file while placement runs: the next load finds it gone and fetches it again
    await unary((cb) => cluster!.admin.unloadModel({ model: "stories" }, cb));
    await cluster.waitForEvent((event) => event.kind === "unloaded" && event.model === "stories");
    rmSync(path.join(modelsDir, "hf_ggml-org_stories.Q8_0.gguf"));
    const afterDelete = await collect(cluster.inference, request);
    assert.equal(afterDelete.error, undefined, afterDelete.error?.details);
    assert.ok(afterDelete.tokens > 0 && afterDelete.events.some(isDownloading), "downloaded again, then served");
    assert.deepEqual(hostRequests(), [2, 2]);
    assert.equal(sha256(readFileSync(path.join(modelsDir, "hf_ggml-org_stories.Q8_0.gguf"))), sha256(stories));
  });

  it("ends the waiters of a failed download with a clear error (404, offline, checksum), serves other models meanwhile, and tries again on the next request", async () => {
    const modelsDir = path.join(directory, "models");
    const closedPort = await freePortPair();
    server.serve("/tampered.gguf", { bytes: stories });
    cluster = await startCluster({
      budget: "1GiB",
      models_dir: modelsDir,
      models: [
        { name: "gone", path: `${server.url}/gone.gguf`, context: 512, threads: 1 },
        { name: "offline", path: `http://127.0.0.1:${closedPort}/offline.gguf`, context: 512, threads: 1 },
        { name: "tampered", path: `${server.url}/tampered.gguf`, sha256: "f".repeat(64), context: 512, threads: 1 },
        { name: "local", path: storiesModel, context: 512, threads: 1 },
      ],
    });
    const request = (model: string) => generateRequest({ model, maxTokens: 16, sampling: { temperature: 0, stop: [] } });
    // act
    const [gone, offline, tampered] = await Promise.all(["gone", "offline", "tampered"].map((model) => collect(cluster!.inference, request(model))));
    // assert: each waiter saw its download start, then an error that says what to do
    assert.equal(gone.error?.code, status.NOT_FOUND, gone.error?.details);
    assert.equal(gone.error?.details, `${server.url}/gone.gguf answered 404 Not Found: check the address`);
    assert.equal(offline.error?.code, status.UNAVAILABLE, offline.error?.details);
    assert.match(offline.error!.details, new RegExp(`^cannot reach 127\\.0\\.0\\.1:${closedPort} \\(ECONNREFUSED\\): check the network connection`));
    assert.equal(tampered.error?.code, status.FAILED_PRECONDITION, tampered.error?.details);
    assert.match(tampered.error!.details, /SHA-256 of the download is 270cba1b[0-9a-f]+, expected f{64}; the file was deleted/);
    for (const result of [gone, offline, tampered]) assert.ok(result.events.some(isDownloading));
    assert.deepEqual(cluster.events.filter((event) => event.kind === "download_failed").map((event) => event.model).sort(), ["gone", "offline", "tampered"]);
    assert.deepEqual(readdirSync(modelsDir).filter((name) => name.endsWith(".gguf")), [], "nothing half-made is left to load");

    const other = await collect(cluster.inference, request("local"));
    assert.equal(other.error, undefined, other.error?.details);
    assert.ok(other.tokens > 0);

    // the file appears at the host: the next request downloads it and is served
    server.serve("/gone.gguf", { bytes: stories });
    const retried = await collect(cluster.inference, request("gone"));
    assert.equal(retried.error, undefined, retried.error?.details);
    assert.ok(retried.tokens > 0 && retried.events.some(isDownloading));
    assert.equal(sha256(readFileSync(path.join(modelsDir, "gone.gguf"))), sha256(stories));
  });

  it("in a terminal: `modelswap generate` shows the download, then the load, then the story", async () => {
    server.manifest("ggml-org", "stories-GGUF", "Q8_0", "stories260K-Q8_0.gguf");
    server.serve(HF_FILE, { bytes: stories });
    const port = await freePortPair();
    const config = path.join(directory, "config.yaml");
    writeFileSync(
      config,
      [
        `listen: 127.0.0.1:${port}`,
        "budget: 1GiB",
        "placement: {listen: 127.0.0.1:0}",
        "models_dir: ./models",
        "models:",
        "  - {name: stories, path: 'hf:ggml-org/stories-GGUF:Q8_0', context: 512, threads: 1}",
      ].join("\n"),
    );
    const env = { ...process.env, MODELSWAP_LOG: "silent", MODELSWAP_ADDRESS: `127.0.0.1:${port}` };
    const serving = startProcess([CLI_MAIN, "serve", "-c", config], env);
    try {
      await serving.waitForLine((line) => (line.startsWith("modelswap serving on") ? true : undefined));
      // act
      const result = await cli(["generate", "-m", "stories", "-n", "32", "--temperature", "0", "Once upon a time"], env, 60_000);
      // assert
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /\b(the|was|a|and)\b/);
      const lines = result.stderr.split("\n");
      const at = (line: string) => lines.indexOf(line);
      assert.ok(at("[downloading stories: started]") >= 0, result.stderr);
      assert.ok(at("[downloading stories: 1.1 MiB of 1.1 MiB]") > at("[downloading stories: started]"), result.stderr);
      assert.ok(at("[loading stories: started]") > at("[downloading stories: 1.1 MiB of 1.1 MiB]"), result.stderr);
      assert.ok(readdirSync(path.join(directory, "models")).includes("hf_ggml-org_stories.Q8_0.gguf"));
    } finally {
      await serving.stop();
    }
  });

  it("stopping placement mid-download keeps what arrived: the next start asks the host only for the rest", async () => {
    // 12 MB: bigger than the downloader's 5 MiB chunks, so that a resume can skip what arrived
    const forged = await forgeModel({ sizeBytes: 12_000_000, outPath: path.join(directory, "source.gguf"), weightType: "q8_0" });
    const big = readFileSync(forged.path);
    const stallFrom = Math.floor(big.length / 2);
    server.serve("/big.gguf", { bytes: big, stallRangesFrom: stallFrom });
    const stalledBytes = () => server.requests.filter((served) => served.stalled).reduce((sum, served) => sum + Math.min(served.range!.end, big.length - 1) - served.range!.start + 1, 0);
    const modelsDir = path.join(directory, "models");
    const document = { budget: "1GiB", models_dir: modelsDir, models: [{ name: "big", path: `${server.url}/big.gguf`, context: 512, threads: 1 }] };
    const request = generateRequest({ model: "big", maxTokens: 8, sampling: { temperature: 0, stop: [] } });
    cluster = await startCluster(document);
    // all but the ranges the host hangs on has arrived (the waiter sees it in its download events): placement stops
    const arrived = deferred();
    const first = collect(cluster.inference, request, {
      onEvent: (message) => {
        const bytes = message.event?.$case === "loading" ? message.event.value.downloadedBytes : 0;
        if (stalledBytes() > 0 && bytes >= big.length - stalledBytes()) arrived.resolve();
      },
    });
    await arrived.promise;
    await cluster.stop();
    cluster = undefined;
    assert.ok((await first).error, "the waiting request ends when placement stops");
    assert.ok(!readdirSync(modelsDir).includes("big.gguf"), "no file that looks complete");
    const firstRun = server.requests.length;

    server.serve("/big.gguf", { bytes: big });
    cluster = await startCluster(document);
    const resumed = await collect(cluster.inference, request);
    assert.equal(resumed.error, undefined, resumed.error?.details);
    assert.ok(resumed.tokens > 0 && resumed.events.some(isDownloading));
    assert.equal(sha256(readFileSync(path.join(modelsDir, "big.gguf"))), sha256(big));
    const second = server.requests.slice(firstRun).filter((served) => served.method === "GET" && served.range);
    assert.ok(second.length > 0 && second.every((served) => served.range!.start >= stallFrom), `the second run asked only for what was missing: ${JSON.stringify(second)}`);
  });
});
