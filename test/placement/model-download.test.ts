import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { notFound } from "../../common/errors.js";
import { ModelState } from "../../gen/modelswap/v1/inference.js";
import { downloadStep, type DownloadStep } from "../../services/placement/download-step.js";
import type { ModelFile } from "../../services/placement/records.js";
import { MiB, modelConfig, PlacementHarness, RUNNER_BASE } from "./placement-harness.js";

const commandsOf = (harness: PlacementHarness, kind: string) => harness.commands.filter((entry) => entry.command.command?.$case === kind).map((entry) => entry.runnerId);

/** A catalog model named by a URL, its file to be downloaded to /models/NAME.gguf. */
const remote = (name: string) => modelConfig(name, { path: `/models/${name}.gguf`, source: { kind: "url", uri: `https://models.example/${name}.gguf`, fileName: `${name}.gguf` } });

/** "remote" is named by a URL in the catalog and its file is not in models_dir yet; "local" is on disk. */
function remoteAndLocal(settings = {}) {
  const harness = new PlacementHarness([remote("remote"), modelConfig("local")], settings, ["remote"]);
  harness.sizes.set("remote", 120 * MiB);
  harness.sizes.set("local", 100 * MiB);
  return harness.start();
}

describe("placement core: a model whose file is missing is downloaded on first use", () => {
  describe("whether a cold model needs a download first (pure)", () => {
    const table: { file: ModelFile; hasSource: boolean; running?: number; step: DownloadStep }[] = [
      { file: { state: "present" }, hasSource: true, step: "none" },
      { file: { state: "present" }, hasSource: false, step: "none" },
      { file: { state: "missing" }, hasSource: true, step: "start" },
      { file: { state: "missing" }, hasSource: true, running: 1, step: "start" },
      // max_downloads (2 here) already run: wait for one to end
      { file: { state: "missing" }, hasSource: true, running: 2, step: "wait_for_slot" },
      // No source: nothing to fetch from; the load reports the missing file.
      { file: { state: "missing" }, hasSource: false, running: 2, step: "none" },
      { file: { state: "downloading", bytes: 10, totalBytes: 100, startedMs: 0 }, hasSource: true, running: 2, step: "wait" },
    ];
    for (const row of table) {
      it(`${row.file.state}, ${row.hasSource ? "with" : "without"} a source, ${row.running ?? 0} of 2 downloads running: ${row.step}`, () => {
        assert.equal(downloadStep(row.file, row.hasSource, row.running ?? 0, 2), row.step);
      });
    }
  });

  it("starts one download for concurrent requests, shows both its progress, then loads and grants as usual", () => {
    const harness = remoteAndLocal();
    harness.autoFinishLoads = false;
    const committedBefore = harness.committed();
    const stateOf = () => harness.core.listModels().find((info) => info.name === "remote")!.state;
    assert.equal(stateOf(), ModelState.MODEL_STATE_NOT_DOWNLOADED);
    // act: two requests while the file is missing
    const first = harness.request("w1", "remote");
    const second = harness.request("w2", "remote");
    // assert: one download to the model's path, no estimate or load yet, no memory charged
    assert.deepEqual(harness.downloads, [{ model: "remote", source: "https://models.example/remote.gguf", path: "/models/remote.gguf" }]);
    assert.deepEqual(commandsOf(harness, "estimate"), []);
    assert.deepEqual(commandsOf(harness, "load"), []);
    assert.equal(harness.committed(), committedBefore);
    assert.deepEqual(first.downloading, [[0, 0]]);
    assert.deepEqual(second.downloading, [[0, 0]], "a request joining the download sees where it stands");
    assert.equal(stateOf(), ModelState.MODEL_STATE_DOWNLOADING);

    harness.core.downloadProgress("remote", 512 * 1024, 2 * MiB);
    harness.core.downloadProgress("remote", 2 * MiB, 2 * MiB);
    assert.deepEqual(first.downloading.slice(1), [[512 * 1024, 2 * MiB], [2 * MiB, 2 * MiB]]);
    assert.deepEqual(second.downloading.slice(1), [[512 * 1024, 2 * MiB], [2 * MiB, 2 * MiB]]);
    assert.deepEqual(first.loading, [], "the load has not started");

    harness.advance(3_000);
    harness.core.downloadDone("remote", { bytes: 2 * MiB, mtimeMs: 5 });
    harness.settle();
    // the file is estimated, then loaded: memory is charged from the load on
    assert.equal(commandsOf(harness, "estimate").length, 1);
    assert.equal(commandsOf(harness, "load").length, 1);
    assert.equal(harness.committed(), committedBefore + 120 * MiB);
    harness.finishLoads();
    assert.deepEqual(first.loading, [0, 1]);
    assert.equal(first.lease?.model, "remote");
    assert.equal(second.lease?.model, "remote");
    assert.equal(stateOf(), ModelState.MODEL_STATE_RESIDENT);
    assert.deepEqual([first.lease?.queueMs, first.lease?.loadMs], [0, 3_000], "the download counts as load time");
    assert.deepEqual(harness.kinds("downloading"), ["remote"]);
    assert.deepEqual(harness.kinds("downloaded"), ["remote"]);
    assert.equal(harness.core.models.get("remote")!.catalog.fileBytes, 2 * MiB);
    // the next request finds the file: no second download
    harness.release("w1").release("w2");
    harness.request("w3", "remote");
    assert.equal(harness.downloads.length, 1);
  });

  it("fails every waiter with the download's error, disturbs no other model, and tries again on the next request", () => {
    const harness = remoteAndLocal();
    const first = harness.request("w1", "remote");
    const second = harness.request("w2", "remote");
    // another model is served while the download runs
    assert.equal(harness.request("w3", "local").lease?.model, "local");

    harness.core.downloadFailed("remote", notFound("https://models.example/remote.gguf answered 404 Not Found: check the address"));
    harness.settle();
    for (const waiter of [first, second]) {
      assert.equal(waiter.error?.code, status.NOT_FOUND);
      assert.match(waiter.error!.message, /404 Not Found/);
    }
    assert.equal(harness.events.find((event) => event.kind === "download_failed")?.reason, "https://models.example/remote.gguf answered 404 Not Found: check the address");
    assert.ok(harness.runnerOf("local"), "the other model stays resident");
    assert.equal(harness.core.queue.length, 0);
    // a later request tries again
    const again = harness.request("w4", "remote");
    assert.equal(harness.downloads.length, 2);
    assert.deepEqual(again.downloading, [[0, 0]]);
  });

  it("fetches the file again when it was deleted while placement ran: the failed load sends its waiter to a new download, not an error", () => {
    const harness = remoteAndLocal();
    const first = harness.request("w1", "remote");
    harness.core.downloadDone("remote", { bytes: 2 * MiB, mtimeMs: 5 });
    harness.settle();
    assert.equal(first.lease?.model, "remote");
    harness.release("w1");
    harness.core.unload("remote");
    harness.settle();
    assert.equal(harness.runnerOf("remote"), undefined);
    // act: the file was deleted; the next load fails and placement finds the file gone
    harness.autoFinishLoads = false;
    const next = harness.request("w2", "remote");
    const runner = harness.loadingRunner()!.id;
    harness.core.fileGone("remote");
    harness.core.runnerLoadFailed(runner, "remote", "no file at /models/remote.gguf");
    harness.settle();
    // assert: the waiter follows a second download, then gets its lease
    assert.equal(next.error, undefined);
    assert.equal(harness.downloads.length, 2);
    assert.deepEqual(next.downloading, [[0, 0]]);
    harness.core.downloadDone("remote", { bytes: 2 * MiB, mtimeMs: 9 });
    harness.finishLoads();
    assert.equal(next.lease?.model, "remote");
    assert.deepEqual(harness.kinds("downloading"), ["remote", "remote"]);
  });

  it("a model with no source whose file is gone fails its waiters with the load's reason (nothing to fetch from)", () => {
    const harness = remoteAndLocal();
    harness.autoFinishLoads = false;
    const waiter = harness.request("w1", "local");
    const runner = harness.loadingRunner()!.id;
    harness.core.fileGone("local");
    harness.core.runnerLoadFailed(runner, "local", "no file at /models/local.gguf");
    harness.settle();
    assert.equal(waiter.error?.code, status.FAILED_PRECONDITION);
    assert.match(waiter.error!.message, /failed to load: no file at \/models\/local\.gguf/);
    assert.equal(harness.downloads.length, 0);
  });

  it("runs at most placement.max_downloads downloads at once: the next model's download starts when one ends", () => {
    const harness = new PlacementHarness([remote("r1"), remote("r2"), remote("r3"), modelConfig("local")], { maxDownloads: 2 }, ["r1", "r2", "r3"]).start();
    // act: three models to fetch, and one on disk
    const [first, second, third] = ["r1", "r2", "r3"].map((model, index) => harness.request(`w${index}`, model, harness.now + 30_000));
    const local = harness.request("w-local", "local");
    // assert: two downloads run; the third waits without a download, and the model on disk is served
    assert.deepEqual(harness.downloads.map((download) => download.model), ["r1", "r2"]);
    assert.deepEqual([first!.downloading, second!.downloading, third!.downloading], [[[0, 0]], [[0, 0]], []]);
    assert.equal(local.lease?.model, "local");
    harness.core.downloadDone("r1", { bytes: 2 * MiB, mtimeMs: 5 });
    harness.settle();
    assert.deepEqual(harness.downloads.map((download) => download.model), ["r1", "r2", "r3"], "r1's slot goes to r3");
    assert.deepEqual(third!.downloading, [[0, 0]]);
    assert.equal(first!.lease?.model, "r1");
  });

  it("a request still waiting for a download slot at its deadline is told why", () => {
    const harness = new PlacementHarness([remote("r1"), remote("r2")], { maxDownloads: 1 }, ["r1", "r2"]).start();
    harness.request("w1", "r1");
    const late = harness.request("w2", "r2", harness.now + 5_000);
    harness.advance(6_000);
    assert.equal(late.error?.code, status.DEADLINE_EXCEEDED);
    assert.match(late.error!.message, /to start downloading: all 1 download slots are taken \(placement\.max_downloads\)/);
    assert.deepEqual(harness.downloads.map((download) => download.model), ["r1"]);
  });

  it("a request that joins a download under way is told at once how far it got", () => {
    const harness = remoteAndLocal();
    harness.request("w1", "remote");
    harness.core.downloadProgress("remote", 3 * MiB, 8 * MiB);
    const joiner = harness.request("w2", "remote");
    assert.deepEqual(joiner.downloading, [[3 * MiB, 8 * MiB]]);
  });

  it("a request waiting for a download asks back no held lease: it waits on the network, not on memory", () => {
    const harness = remoteAndLocal();
    harness.request("w1", "local");
    harness.park("w1");
    // act
    const waiting = harness.request("w2", "remote");
    // assert
    assert.deepEqual(waiting.downloading, [[0, 0]]);
    assert.equal(harness.wasRevoked("w1"), false);
    harness.resume("w1");
    assert.equal(harness.wasRevoked("w1"), false, "the warm model keeps serving on its lease");
  });

  it("a waiter past its deadline leaves; the download goes on for the others", () => {
    const harness = remoteAndLocal();
    const impatient = harness.request("w1", "remote", harness.now + 5_000);
    const patient = harness.request("w2", "remote");
    harness.core.downloadProgress("remote", 3 * MiB, 8 * MiB);
    harness.advance(6_000);
    assert.equal(impatient.error?.code, status.DEADLINE_EXCEEDED);
    assert.match(impatient.error!.message, /to download \(3\.0 MiB of 8\.0 MiB so far\); the download goes on/);
    assert.equal(patient.error, undefined);
    harness.core.downloadDone("remote", { bytes: 8 * MiB, mtimeMs: 5 });
    harness.settle();
    assert.equal(patient.lease?.model, "remote");
    assert.equal(harness.downloads.length, 1);
  });

  it("a download that outlasts the fairness bound holds no other model's requests up", () => {
    const harness = remoteAndLocal({ fairnessMs: 10_000 });
    assert.ok(harness.request("w1", "local").lease); // keeps its lease: one of local's two sequences
    harness.request("w2", "remote");
    harness.advance(20_000);
    const behind = harness.request("w3", "local");
    assert.equal(behind.lease?.model, "local", "the second sequence is granted behind the download");
  });

  it("downloads a model marked preload at start, before any request", () => {
    const remote = modelConfig("remote", { preload: true, source: { kind: "url", uri: "https://models.example/remote.gguf", fileName: "remote.gguf" } });
    const harness = new PlacementHarness([remote], {}, ["remote"]).start();
    assert.deepEqual(harness.downloads.map((order) => order.model), ["remote"]);
    harness.core.downloadDone("remote", { bytes: MiB, mtimeMs: 1 });
    harness.settle();
    assert.ok(harness.runnerOf("remote"), "loaded once downloaded");
  });

  it("ignores reports for a model that is not downloading, and byte counts that are not counts", () => {
    const harness = remoteAndLocal();
    harness.core.downloadDone("local", { bytes: 1, mtimeMs: 1 });
    harness.core.downloadFailed("local", notFound("no"));
    const waiter = harness.request("w1", "remote");
    harness.core.downloadProgress("remote", -1, 10);
    harness.core.downloadProgress("remote", Number.NaN, 10);
    assert.deepEqual(waiter.downloading, [[0, 0]]);
    assert.deepEqual(harness.kinds("download_failed"), []);
    assert.equal(harness.committed(), RUNNER_BASE);
  });
});
