import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, jsonLine, startProcess } from "../support/processes.js";

/** What a person running placement sees on stderr, and what a log collector gets. */
describe("log formats of placement and its runners", function () {
  this.timeout(90_000);
  let directory: string;
  let config: string;

  before(() => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-logs-"));
    config = path.join(directory, "config.yaml");
    writeFileSync(
      config,
      ["budget: 200MiB", "placement: {listen: 127.0.0.1:0, spare_runners: 0}", "models:", `  - {name: stories, path: "${storiesModel}", context: 256, threads: 1, gpu: cpu, preload: true}`].join("\n"),
    );
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  async function runUntilReady(args: string[]): Promise<string[]> {
    const env = { ...process.env, MODELSWAP_LOG: "", MODELSWAP_LOG_FORMAT: "" };
    const placement = startProcess([CLI_MAIN, "placement", "-c", config, "--secret-file", path.join(directory, "internal.secret"), ...args], env);
    try {
      await placement.waitForLine((line) => (line.includes("placement_ready") ? true : undefined), 60_000);
      return [...placement.stderr];
    } finally {
      await placement.stop();
    }
  }

  it("--log-format pretty: one readable line per event, time first; runners follow", async () => {
    const lines = await runUntilReady(["--log-format", "pretty"]);
    assert.ok(lines.every((line) => !line.startsWith("{")), lines.join("\n"));
    assert.ok(lines.some((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: placement placement_listening address=127\.0\.0\.1:\d+ budgetBytes=209715200 policy=cost$/.test(line)), lines.join("\n"));
    assert.ok(lines.some((line) => /^\[[\d:.]+\] INFO: runner\/r[\w-]+ runner_listening address=127\.0\.0\.1:\d+ runnerPid=\d+ placement=127\.0\.0\.1:\d+ rssBytes=\d+$/.test(line)), lines.join("\n"));
    assert.ok(lines.some((line) => /INFO: runner\/r[\w-]+ model_loaded model=stories loadMs=[\d.]+ measuredBytes=\d+ models=1$/.test(line)), lines.join("\n"));
  });

  it("JSON lines when stderr is not a terminal, from placement and runners alike", async () => {
    const lines = await runUntilReady([]);
    const parsed = lines.map(jsonLine);
    assert.ok(parsed.every((line) => line !== undefined), lines.join("\n"));
    for (const line of parsed) {
      assert.match(String(line!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(["info", "warn", "error"].includes(String(line!.level)), JSON.stringify(line));
    }
    const runner = parsed.find((line) => line!.event === "runner_listening")!;
    assert.equal(runner.service, "runner");
    assert.match(String(runner.runnerId), /^r/);
    assert.equal(parsed.find((line) => line!.event === "placement_listening")!.service, "placement");
  });
});
