import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "../../common/logger.js";
import { ModelFetches, type FetchEvent } from "../../services/placement/model-fetches.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { storiesModel } from "../support/paths.js";

const stories = readFileSync(storiesModel);

/** Placement's download processes (services/runner/fetch-main.ts, real child processes) against a model host on loopback. */
describe("model download processes (what placement's core hears from them)", function () {
  this.timeout(60_000);
  let server: ModelServer;
  let directory: string;
  let fetches: ModelFetches;

  /** Starts a download and resolves with every event up to its done or failed. */
  function fetchAll(source: string, file: string): Promise<FetchEvent[]> {
    const events: FetchEvent[] = [];
    return new Promise((resolve) => {
      fetches.onEvent((event) => {
        events.push(event);
        if (event.kind !== "progress") resolve(events);
      });
      fetches.start({ model: "m", source, path: path.join(directory, file) });
    });
  }

  beforeEach(async () => {
    server = await startModelServer();
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-fetches-"));
    fetches = new ModelFetches({ logger: createLogger("test", {}, { quiet: true }), stallTimeoutMs: 1_000 });
  });
  afterEach(async () => {
    await fetches.stopAll();
    await server.close();
    rmSync(directory, { recursive: true, force: true });
  });

  it("reports progress to the last byte, then done with the file on disk", async () => {
    server.serve("/stories.gguf", { bytes: stories });
    const events = await fetchAll(`${server.url}/stories.gguf`, "stories.gguf");
    const done = events.at(-1)!;
    assert.equal(done.kind, "done");
    assert.equal(done.kind === "done" && done.file.bytes, stories.length);
    const progress = events.filter((event) => event.kind === "progress");
    assert.ok(progress.length >= 1);
    assert.deepEqual(progress.at(-1), { kind: "progress", model: "m", bytes: stories.length, totalBytes: stories.length });
    assert.deepEqual(readFileSync(path.join(directory, "stories.gguf")), stories);
  });

  it("starts a new try at once after a failure, while the failed process may still be exiting", async () => {
    const ends: FetchEvent[] = [];
    const finished = new Promise<void>((resolve) => {
      fetches.onEvent((event) => {
        if (event.kind === "progress") return;
        ends.push(event);
        if (event.kind === "failed") {
          // the core's next request retries as soon as it hears of the failure
          server.serve("/late.gguf", { bytes: stories });
          fetches.start({ model: "m", source: `${server.url}/late.gguf`, path: path.join(directory, "late.gguf") });
        } else resolve();
      });
    });
    fetches.start({ model: "m", source: `${server.url}/late.gguf`, path: path.join(directory, "late.gguf") });
    await finished;
    assert.deepEqual(ends.map((event) => event.kind), ["failed", "done"]);
    assert.equal(ends[0]!.kind === "failed" && ends[0]!.error.code, status.NOT_FOUND);
  });

  it("gives up on a host that stops sending, with UNAVAILABLE, instead of holding the waiters forever", async () => {
    server.serve("/hung.gguf", { bytes: stories, stallRangesFrom: 0 });
    const events = await fetchAll(`${server.url}/hung.gguf`, "hung.gguf");
    const failed = events.at(-1)!;
    assert.equal(failed.kind, "failed");
    assert.equal(failed.kind === "failed" && failed.error.code, status.UNAVAILABLE);
    assert.match(failed.kind === "failed" ? failed.error.message : "", /hung\.gguf: the host sent nothing for 1 s \(at \d+ bytes\); what arrived is kept, and the next request resumes the download/);
    assert.ok(server.requests.some((served) => served.stalled), "the host hung");
  });
});
