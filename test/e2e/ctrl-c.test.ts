import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, jsonLine, startProcess, type WatchedProcess } from "../support/processes.js";

/**
 * A person presses Ctrl-C in the terminal that runs `modelswap serve` (or `modelswap placement`):
 * the terminal sends SIGINT to every process of the foreground group (serve, placement, runners).
 * Each process stops as its parent asks: no runner dies of the signal and is reported as crashed.
 */
describe("Ctrl-C in the terminal (SIGINT to the whole process group)", function () {
  this.timeout(60_000);
  let directory: string;
  let config: string;
  let running: WatchedProcess | undefined;

  before(() => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-ctrl-c-"));
    config = path.join(directory, "config.yaml");
    writeFileSync(
      config,
      ["listen: 127.0.0.1:0", "budget: 300MiB", "placement: {listen: 127.0.0.1:0, spare_runners: 1}", "models:", `  - {name: stories, path: "${storiesModel}", context: 256, threads: 1, gpu: cpu, preload: true}`].join("\n"),
    );
  });
  afterEach(() => {
    // whatever is left of the group this test started
    if (running?.child.pid && running.child.exitCode === null) process.kill(-running.child.pid, "SIGKILL");
    running = undefined;
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  async function pressCtrlC(args: string[], readyLine: (line: string) => boolean): Promise<{ code: number | null; runners: Set<string>; logs: Record<string, unknown>[] }> {
    running = startProcess([CLI_MAIN, ...args, "-c", config], { ...process.env, MODELSWAP_LOG: "", MODELSWAP_LOG_FORMAT: "json" }, { detached: true });
    const child = running.child;
    await running.waitForLine((line) => (readyLine(line) ? true : undefined), 60_000);
    await running.waitForLine((line) => (jsonLine(line)?.event === "residency_loaded" ? true : undefined), 60_000);
    // both runners (the model's and the spare) run their code: a process still in Node's own start-up
    // (its first ~50 ms, before any handler can be installed) would die of the SIGINT
    const started = new Set<string>();
    await running.waitForLine((line) => {
      const entry = jsonLine(line);
      if (entry?.event === "runner_listening") started.add(String(entry.runnerId));
      return started.size >= 2 ? true : undefined;
    }, 60_000);
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    // act: the terminal's Ctrl-C
    process.kill(-child.pid!, "SIGINT");
    const code = await exited;
    // placement logged each runner's exit before it ended; the pipe may still hold those lines
    const exitsSeen = new Set<string>();
    await running.waitForLine((line) => {
      const entry = jsonLine(line);
      if (entry?.event === "runner_exit") exitsSeen.add(String(entry.runnerId));
      return [...started].every((id) => exitsSeen.has(id)) ? true : undefined;
    }, 10_000, true);
    return { code, runners: started, logs: [...running.stdout, ...running.stderr].map(jsonLine).filter((entry): entry is Record<string, unknown> => entry !== undefined) };
  }

  function assertRunnersStoppedByPlacement(runners: Set<string>, logs: Record<string, unknown>[]): void {
    const exits = logs.filter((entry) => entry.event === "runner_exit");
    assert.deepEqual(exits.map((exit) => String(exit.runnerId)).sort(), [...runners].sort(), "placement saw each of its runners end, once");
    // each ended as placement asked: an exit of its own, or placement's SIGTERM (a runner still starting); never the SIGINT
    for (const exit of exits) assert.ok(exit.code === 0 || exit.signal === "SIGTERM", JSON.stringify(exit));
    const crashed = logs.filter((entry) => String(entry.reason ?? "").startsWith("crashed"));
    assert.deepEqual(crashed, [], "no runner reported as crashed");
  }

  it("modelswap serve: the gateway, placement and runners stop cleanly, and serve exits 0", async () => {
    const { code, runners, logs } = await pressCtrlC(["serve"], (line) => line.startsWith("modelswap serving on"));
    assert.equal(code, 0);
    assertRunnersStoppedByPlacement(runners, logs);
  });

  it("modelswap placement alone: it ends its runners itself and exits 0", async () => {
    const { code, runners, logs } = await pressCtrlC(["placement", "--secret-file", path.join(directory, "internal.secret")], (line) => line.includes("placement_ready"));
    assert.equal(code, 0);
    assertRunnersStoppedByPlacement(runners, logs);
  });
});
