import assert from "node:assert/strict";
import { chooseRunnerForLoad, type LoadTarget, type RunnerSlot } from "../../services/placement/choose-runner.js";

const runner = (id: string, models: string[], overrides: Partial<RunnerSlot> = {}): RunnerSlot => ({ id, ready: true, starting: false, isolated: false, models, ...overrides });

describe("where a model loads (chooseRunnerForLoad)", () => {
  const cases: { name: string; model: { name: string; isolation: "shared" | "process" }; runners: RunnerSlot[]; expected: LoadTarget }[] = [
    { name: "shared: joins the runner that hosts the most shared models", model: { name: "m", isolation: "shared" }, runners: [runner("r1", ["a"]), runner("r2", ["b", "c"]), runner("r3", [])], expected: { kind: "runner", runnerId: "r2" } },
    { name: "shared: an empty runner when no runner hosts models", model: { name: "m", isolation: "shared" }, runners: [runner("r1", [])], expected: { kind: "runner", runnerId: "r1" } },
    { name: "shared: never a runner isolated for another model", model: { name: "m", isolation: "shared" }, runners: [runner("r1", ["x"], { isolated: true })], expected: { kind: "new_runner" } },
    { name: "shared: never a runner that already holds the model (another replica)", model: { name: "m", isolation: "shared" }, runners: [runner("r1", ["m", "a"])], expected: { kind: "new_runner" } },
    { name: "shared: waits for a runner that is starting", model: { name: "m", isolation: "shared" }, runners: [runner("r1", [], { ready: false, starting: true })], expected: { kind: "wait_for_runner" } },
    { name: "process: only an empty runner", model: { name: "m", isolation: "process" }, runners: [runner("r1", ["a"]), runner("r2", [])], expected: { kind: "runner", runnerId: "r2" } },
    { name: "process: a new runner when none is empty", model: { name: "m", isolation: "process" }, runners: [runner("r1", ["a"])], expected: { kind: "new_runner" } },
    { name: "a runner that is not ready is not used", model: { name: "m", isolation: "shared" }, runners: [runner("r1", ["a"], { ready: false })], expected: { kind: "new_runner" } },
  ];
  for (const { name, model, runners, expected } of cases) {
    it(name, () => assert.deepEqual(chooseRunnerForLoad(model, runners), expected));
  }
});
