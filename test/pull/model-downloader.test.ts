import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ModelswapError } from "../../common/errors.js";
import { forgeModel } from "../../forge/forge-model.js";
import { download, type DownloadProgress } from "../../services/runner/model-downloader.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { storiesModel } from "../support/paths.js";
import { freePortPair } from "../support/processes.js";

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const stories = readFileSync(storiesModel);
const STORIES_SHA256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";

/** Asserts a ModelswapError with this gRPC status whose message matches. */
function rejectsWith(code: status, message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ModelswapError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };
}

describe("pulling a model with node-llama-cpp's downloader (HTTP server on loopback)", function () {
  this.timeout(120_000);
  let server: ModelServer;
  let dir: string;
  let big: Buffer;

  before(async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "modelswap-forge-"));
    // 12 MB: bigger than the downloader's 5 MiB chunks, so that a resume can skip what arrived
    const forged = await forgeModel({ sizeBytes: 12_000_000, outPath: path.join(scratch, "big.gguf"), weightType: "q8_0" });
    big = readFileSync(forged.path);
    rmSync(scratch, { recursive: true, force: true });
  });
  beforeEach(async () => {
    server = await startModelServer();
    dir = mkdtempSync(path.join(tmpdir(), "modelswap-pull-"));
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("downloads a GGUF from a URL into the folder, reporting progress, and checks its SHA-256", async () => {
    server.serve("/models/stories260K.gguf", { bytes: stories });
    const progress: DownloadProgress[] = [];
    const pulled = await download({ source: `${server.url}/models/stories260K.gguf`, dir, expectedSha256: STORIES_SHA256, onProgress: (p) => progress.push(p) });
    assert.deepEqual(pulled, { path: path.join(dir, "stories260K.gguf"), bytes: stories.length, sha256: STORIES_SHA256 });
    assert.equal(sha256(readFileSync(pulled.path)), STORIES_SHA256);
    assert.deepEqual(readdirSync(dir), ["stories260K.gguf"], "no partial or progress file is left");
    assert.ok(progress.length > 0);
    assert.equal(progress.at(-1)!.bytes, stories.length);
    assert.equal(progress.at(-1)!.totalBytes, stories.length);

    // a second pull finds the complete file and fetches no body
    const before = server.requests.length;
    assert.deepEqual(await download({ source: `${server.url}/models/stories260K.gguf`, dir }), { path: pulled.path, bytes: stories.length });
    assert.equal(server.requests.slice(before).filter((request) => request.range).length, 0);
  });

  it("resumes after the server cuts the connection: the next request asks with Range for what is missing", async () => {
    const cutAfter = 6_000_000;
    server.serve("/big.gguf", { bytes: big, cutFirstRangeAfter: cutAfter });
    const pulled = await download({ source: `${server.url}/big.gguf`, dir, expectedSha256: sha256(big) });
    assert.equal(pulled.bytes, big.length);
    assert.equal(sha256(readFileSync(pulled.path)), sha256(big));

    const cut = server.requests.find((request) => request.cut);
    const cutRange = cut?.range;
    assert.ok(cut && cutRange, JSON.stringify(server.requests));
    const after = server.requests.slice(server.requests.indexOf(cut) + 1).filter((request) => request.range);
    assert.ok(after.length > 0, "a request after the cut");
    // the rest of the cut range was asked for again, starting after bytes that had arrived
    const resumed = after.find((request) => request.range!.end === cutRange.end);
    assert.ok(resumed, JSON.stringify(server.requests));
    assert.ok(resumed.range!.start > cutRange.start && resumed.range!.start <= cutRange.start + cutAfter, JSON.stringify({ cut, resumed }));
  });

  it("resumes an interrupted download (aborted by its signal) without fetching the whole file again", async () => {
    const stallFrom = Math.floor(big.length / 2);
    server.serve("/big.gguf", { bytes: big, stallRangesFrom: stallFrom });
    const interrupt = new AbortController();
    const stalledBytes = () => server.requests.filter((request) => request.stalled).reduce((sum, request) => sum + Math.min(request.range!.end, big.length - 1) - request.range!.start + 1, 0);
    const first = download({
      source: `${server.url}/big.gguf`,
      dir,
      signal: interrupt.signal,
      // all but the ranges the server hangs on has arrived: interrupt, as Ctrl-C would
      onProgress: (progress) => {
        if (stalledBytes() > 0 && progress.bytes >= big.length - stalledBytes()) interrupt.abort();
      },
    });
    await assert.rejects(first, rejectsWith(status.CANCELLED, new RegExp(`interrupted at \\d+ of ${big.length} bytes; the same command resumes it`)));
    assert.ok(!existsSync(path.join(dir, "big.gguf")), "no file that looks complete");
    const firstRun = server.requests.length;

    server.serve("/big.gguf", { bytes: big });
    const pulled = await download({ source: `${server.url}/big.gguf`, dir, expectedSha256: sha256(big) });
    assert.equal(sha256(readFileSync(pulled.path)), sha256(big));
    const second = server.requests.slice(firstRun).filter((request) => request.range);
    assert.ok(second.length > 0 && second.every((request) => request.range!.start >= stallFrom), `the second run asked only for what was missing: ${JSON.stringify(second)}`);
  });

  it("says NOT_FOUND, naming the address, when the server answers 404", async () => {
    await assert.rejects(download({ source: `${server.url}/missing.gguf`, dir }), rejectsWith(status.NOT_FOUND, /missing\.gguf answered 404 Not Found: check the address/));
    assert.deepEqual(readdirSync(dir), []);
  });

  it("refuses a file whose SHA-256 differs from --sha256 and deletes it", async () => {
    server.serve("/models/stories260K.gguf", { bytes: stories });
    const wrong = "0".repeat(64);
    await assert.rejects(
      download({ source: `${server.url}/models/stories260K.gguf`, dir, expectedSha256: wrong }),
      rejectsWith(status.FAILED_PRECONDITION, new RegExp(`SHA-256 of the download is ${STORIES_SHA256}, expected ${wrong}; the file was deleted`)),
    );
    assert.deepEqual(readdirSync(dir), [], "nothing left that looks like a complete model");
  });

  it("says UNAVAILABLE at once when the host cannot be reached (offline)", async () => {
    const closedPort = await freePortPair();
    const started = performance.now();
    await assert.rejects(
      download({ source: `http://127.0.0.1:${closedPort}/model.gguf`, dir }),
      rejectsWith(status.UNAVAILABLE, new RegExp(`cannot reach 127\\.0\\.0\\.1:${closedPort} \\(ECONNREFUSED\\): check the network connection`)),
    );
    assert.ok(performance.now() - started < 10_000);
    await assert.rejects(
      download({ source: "hf:someone/Some-Model-GGUF:Q4_K_M", dir, huggingFaceEndpoint: `http://127.0.0.1:${closedPort}/` }),
      rejectsWith(status.UNAVAILABLE, /check the network connection, or set HF_ENDPOINT to a reachable Hugging Face mirror/),
    );
  });

  it("pulls hf:<user>/<repo>:<quant> and hf:<user>/<repo>/<file> through a Hugging Face endpoint on loopback", async () => {
    server.manifest("ggml-org", "stories-GGUF", "Q8_0", "stories260K-Q8_0.gguf");
    server.serve("/ggml-org/stories-GGUF/resolve/main/stories260K-Q8_0.gguf", { bytes: stories });
    const endpoint = `${server.url}/`;
    const byQuant = await download({ source: "hf:ggml-org/stories-GGUF:q8_0", dir, huggingFaceEndpoint: endpoint, expectedSha256: STORIES_SHA256 });
    assert.equal(byQuant.path, path.join(dir, "hf_ggml-org_stories.Q8_0.gguf"));
    assert.ok(server.requests.some((request) => request.path === "/v2/ggml-org/stories-GGUF/manifests/Q8_0"), "resolved through the manifest");

    const byFile = await download({ source: "hf:ggml-org/stories-GGUF/stories260K-Q8_0.gguf", dir, huggingFaceEndpoint: endpoint });
    assert.equal(byFile.path, path.join(dir, "hf_ggml-org_stories260K-Q8_0.gguf"));
    assert.equal(sha256(readFileSync(byFile.path)), STORIES_SHA256);

    await assert.rejects(
      download({ source: "hf:ggml-org/stories-GGUF:Q2_K", dir, huggingFaceEndpoint: endpoint }),
      rejectsWith(status.NOT_FOUND, /hf:ggml-org\/stories-GGUF:Q2_K was not found: check the repository ggml-org\/stories-GGUF and the quantisation Q2_K/),
    );
  });

  it("rejects a malformed source or checksum before any request", async () => {
    await assert.rejects(download({ source: "hf:user/repo", dir }), rejectsWith(status.INVALID_ARGUMENT, /must say which quantisation to pull/));
    await assert.rejects(download({ source: `${server.url}/x.gguf`, dir, expectedSha256: "abc" }), rejectsWith(status.INVALID_ARGUMENT, /--sha256 must be 64 hex digits/));
    assert.equal(server.requests.length, 0);
  });
});
