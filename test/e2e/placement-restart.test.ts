import { credentials } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { AdminClient, type StatusResponse } from "../../gen/modelswap/v1/admin.js";
import { InferenceClient } from "../../gen/modelswap/v1/inference.js";
import { ModelState } from "../../gen/modelswap/v1/inference.js";
import { collect, generateRequest, unary } from "../support/cluster.js";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, freePortPair, startProcess, type WatchedProcess } from "../support/processes.js";

/**
 * Placement is its own process. When it dies and comes back on the same address, the
 * runners dial in again with what they hold: resident models are not loaded again.
 */
describe("placement restarts (real processes: placement, gateway, runners)", function () {
  this.timeout(90_000);
  let directory: string;
  let config: string;
  let secretFile: string;
  let placementPort: number;
  let gatewayPort: number;
  const started: WatchedProcess[] = [];
  const env = { ...process.env, MODELSWAP_LOG: "silent" };

  const startPlacementProcess = async () => {
    const placement = startProcess([CLI_MAIN, "placement", "-c", config, "--secret-file", secretFile], env);
    started.push(placement);
    await placement.waitForLine((line) => (line.startsWith("modelswap-placement-ready") ? true : undefined));
    return placement;
  };

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-restart-"));
    placementPort = await freePortPair();
    gatewayPort = await freePortPair();
    config = path.join(directory, "config.yaml");
    secretFile = path.join(directory, "private", "internal-secret");
    writeFileSync(
      config,
      [
        `listen: 127.0.0.1:${gatewayPort}`,
        "budget: 1GiB",
        `placement: {listen: "127.0.0.1:${placementPort}", spare_runners: 1}`,
        "models:",
        `  - {name: stories, path: "${storiesModel}", context: 512, threads: 1, preload: true}`,
      ].join("\n"),
    );
  });
  after(async () => {
    for (const process of started.reverse()) await process.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("keeps the resident model and its runner across a placement crash", async () => {
    // arrange: placement + gateway, the model resident
    const first = await startPlacementProcess();
    const gateway = startProcess([CLI_MAIN, "gateway", "-c", config, "--placement", `127.0.0.1:${placementPort}`, "--secret-file", secretFile], env);
    started.push(gateway);
    const gatewayAddress = `127.0.0.1:${gatewayPort}`;
    const admin = new AdminClient(gatewayAddress, credentials.createInsecure());
    const inference = new InferenceClient(gatewayAddress, credentials.createInsecure());
    const before = await waitForResident(admin);
    const runnerBefore = before.runners.find((runner) => runner.model === "stories")!;

    // act: placement dies without a word; a new one starts on the same address
    first.child.kill("SIGKILL");
    await new Promise((resolve) => first.child.once("exit", resolve));
    await startPlacementProcess();

    // assert: the same runner process serves, and the new placement never loaded the model
    const after = await waitForResident(admin);
    const runnerAfter = after.runners.find((runner) => runner.model === "stories")!;
    assert.equal(runnerAfter.pid, runnerBefore.pid);
    assert.equal(after.models.find((model) => model.info?.name === "stories")!.loads, 0, "resident model was not reloaded");
    const result = await collect(inference, generateRequest({ model: "stories", maxTokens: 16 }));
    assert.equal(result.error, undefined, result.error?.details);
    admin.close();
    inference.close();
  });
});

/**
 * `serve` keeps placement running: kill -9 of its placement process is followed by a new
 * one on the same address, the gateway (same process, no restart) reconnects, the runner
 * that survived is adopted, and requests work again.
 */
describe("serve restarts placement when it dies (real processes: serve, placement, runners)", function () {
  this.timeout(90_000);
  let directory: string;
  let serve: WatchedProcess | undefined;

  before(() => (directory = mkdtempSync(path.join(tmpdir(), "modelswap-supervise-"))));
  after(async () => {
    await serve?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("serves again within seconds after kill -9 of placement, with the model adopted, not reloaded", async () => {
    // arrange: serve with placement on any free port (the restart must reuse the one it got)
    const gatewayPort = await freePortPair();
    const config = path.join(directory, "config.yaml");
    writeFileSync(
      config,
      [`listen: 127.0.0.1:${gatewayPort}`, "budget: 1GiB", "placement: {listen: 127.0.0.1:0, spare_runners: 0}", "models:", `  - {name: stories, path: "${storiesModel}", context: 512, threads: 1, preload: true}`].join("\n"),
    );
    serve = startProcess([CLI_MAIN, "serve", "-c", config], { ...process.env, MODELSWAP_LOG: "silent" });
    const first = await serve.waitForLine((line) => /^modelswap placement started on (\S+) \(pid (\d+)\)/.exec(line) ?? undefined);
    const [placementAddress, placementPid] = [first[1]!, Number(first[2])];
    await serve.waitForLine((line) => (line.startsWith("modelswap serving on") ? true : undefined));
    const gatewayAddress = `127.0.0.1:${gatewayPort}`;
    const admin = new AdminClient(gatewayAddress, credentials.createInsecure());
    const inference = new InferenceClient(gatewayAddress, credentials.createInsecure());
    try {
      const before = await waitForResident(admin);
      const runnerPid = before.runners.find((runner) => runner.model === "stories")!.pid;
      assert.equal((await collect(inference, generateRequest({ model: "stories", maxTokens: 8 }))).error, undefined);

      // act: placement dies without a word
      const killedAt = performance.now();
      process.kill(placementPid, "SIGKILL");
      const restarted = await serve.waitForLine((line) => /^modelswap placement restarted on (\S+) \(pid (\d+), restart 1\)/.exec(line) ?? undefined);
      const restartedMs = performance.now() - killedAt;
      const after = await waitForResident(admin, 30_000, (status) => status.runners.some((runner) => runner.pid === runnerPid));
      const result = await collect(inference, generateRequest({ model: "stories", maxTokens: 16 }));
      const servingMs = performance.now() - killedAt;

      // assert: same address, the surviving runner adopted with its model, a request served (waitForResident bounds the wait)
      assert.equal(restarted[1], placementAddress);
      assert.notEqual(Number(restarted[2]), placementPid);
      assert.equal(after.models.find((model) => model.info?.name === "stories")!.loads, 0, "resident model was not reloaded");
      assert.equal(result.error, undefined, result.error?.details);
      assert.equal(result.tokens, 16);
      console.log(`      placement restarted ${Math.round(restartedMs)} ms after kill -9; a request served ${Math.round(servingMs)} ms after it`);
    } finally {
      admin.close();
      inference.close();
    }
  });
});

async function waitForResident(admin: AdminClient, timeoutMs = 30_000, also: (status: StatusResponse) => boolean = () => true): Promise<StatusResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const status = await unary<StatusResponse>((cb) => admin.getStatus({}, cb));
      if (status.models.some((model) => model.info?.name === "stories" && model.info.state === ModelState.MODEL_STATE_RESIDENT) && also(status)) return status;
    } catch {
      // placement not reachable yet
    }
    if (Date.now() > deadline) throw new Error("stories did not become resident");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
