import assert from "node:assert/strict";
import { ConfigError } from "../../common/config/config-error.js";
import { parseConfig } from "../../common/config/parse-config.js";
import { metricsEndpoint } from "../../common/telemetry/telemetry.js";
import { describeUnloadReason, toWireEvent } from "../../services/placement/residency-events.js";

const withTelemetry = (telemetry: unknown) => parseConfig({ models: [{ name: "m", path: "/m.gguf" }], ...(telemetry === undefined ? {} : { telemetry }) }, "/");

describe("telemetry configuration", () => {
  it("has /metrics off by default, bound to loopback when on, keyless unless metrics_auth", () => {
    assert.deepEqual(withTelemetry(undefined).telemetry, { metricsPort: 0, metricsHost: "127.0.0.1", metricsAuth: false });
    assert.deepEqual(withTelemetry({ metrics_port: 9464, metrics_host: "0.0.0.0" }).telemetry, { metricsPort: 9464, metricsHost: "0.0.0.0", metricsAuth: false });
  });

  it("gives placement metrics_port and the gateway metrics_port + 1", () => {
    const telemetry = { metricsPort: 9464, metricsHost: "0.0.0.0" };
    assert.deepEqual(metricsEndpoint(telemetry, "placement"), { host: "0.0.0.0", port: 9464 });
    assert.deepEqual(metricsEndpoint(telemetry, "gateway"), { host: "0.0.0.0", port: 9465 });
    assert.equal(metricsEndpoint({ metricsPort: 0, metricsHost: "127.0.0.1" }, "gateway").port, 0);
  });

  it("refuses what it cannot serve, saying what to write", () => {
    assert.throws(() => withTelemetry({ metrics_port: 65535 }), (error: unknown) => error instanceof ConfigError && /metrics_port \+ 1/.test(error.message));
    assert.throws(() => withTelemetry({ metrics_host: "not a host" }), (error: unknown) => error instanceof ConfigError && /metrics_host/.test(error.message));
    assert.throws(() => withTelemetry({ metrics_path: "/m" }), ConfigError);
  });

  it("describes typed unload reasons for people, and keeps the cause as a small label set", () => {
    const cases = [
      { reason: { cause: "evicted", policy: "lru", forModel: "big2" }, text: "evicted by lru for big2" },
      { reason: { cause: "idle_ttl" }, text: "idle ttl" },
      { reason: { cause: "admin_unload" }, text: "admin unload" },
      { reason: { cause: "extra_replica" }, text: "idle extra replica" },
      { reason: { cause: "runner_recycled", forModel: "c" }, text: "runner recycled to return memory it kept, for c" },
    ] as const;
    for (const { reason, text } of cases) assert.equal(describeUnloadReason(reason), text);
    const wire = toWireEvent({ kind: "unloading", model: "big", runnerId: "r1", bytes: 10, reason: { cause: "evicted", policy: "lru", forModel: "big2" }, forWaiter: undefined, timeMs: 5, queueDepth: 1 });
    assert.deepEqual(
      { kind: wire.kind, cause: wire.cause, policy: wire.policy, forModel: wire.forModel, reason: wire.reason },
      { kind: "evicted", cause: "evicted", policy: "lru", forModel: "big2", reason: "evicted by lru for big2" },
    );
  });
});
