import assert from "node:assert/strict";
import type { RunnerHeartbeat } from "../../gen/modelswap/v1/runner.js";
import type { TestCluster } from "./cluster.js";

/** The next heartbeat of `runnerId` (after this call) that matches `predicate`. */
export function nextHeartbeat(cluster: TestCluster, runnerId: string, predicate: (beat: RunnerHeartbeat) => boolean, timeoutMs = 10_000): Promise<RunnerHeartbeat> {
  const start = cluster.runnerEvents.length;
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      for (let index = start; index < cluster.runnerEvents.length; index++) {
        const { runnerId: from, event } = cluster.runnerEvents[index]!;
        if (from === runnerId && event.event?.$case === "heartbeat" && predicate(event.event.value)) return resolve(event.event.value);
      }
      if (Date.now() > deadline) return reject(new Error("no matching heartbeat"));
      setTimeout(poll, 5);
    };
    poll();
  });
}

/** The runner that serves `model`, from the runner events placement relayed. */
export function runnerServing(cluster: TestCluster, model: string): string {
  for (const { runnerId, event } of cluster.runnerEvents) {
    if (event.event?.$case === "loaded" && event.event.value.model === model) return runnerId;
  }
  assert.fail(`no runner has loaded ${model}`);
}
