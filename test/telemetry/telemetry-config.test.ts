import assert from "node:assert/strict";
import { ConfigError } from "../../common/config/config-error.js";
import { parseConfig } from "../../common/config/parse-config.js";
import { metricsEndpoint } from "../../common/telemetry/telemetry.js";
import { normaliseUnloadReason } from "../../common/telemetry/placement-metrics.js";

const withTelemetry = (telemetry: unknown) => parseConfig({ models: [{ name: "m", path: "/m.gguf" }], ...(telemetry === undefined ? {} : { telemetry }) }, "/");

describe("telemetry configuration", () => {
  it("has /metrics off by default, bound to loopback when on", () => {
    assert.deepEqual(withTelemetry(undefined).telemetry, { metricsPort: 0, metricsHost: "127.0.0.1" });
    assert.deepEqual(withTelemetry({ metrics_port: 9464, metrics_host: "0.0.0.0" }).telemetry, { metricsPort: 9464, metricsHost: "0.0.0.0" });
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

  it("labels swaps with a small set of reasons", () => {
    assert.equal(normaliseUnloadReason("evicted by lru for big2"), "evicted");
    assert.equal(normaliseUnloadReason("idle ttl"), "idle_ttl");
    assert.equal(normaliseUnloadReason("admin unload"), "admin_unload");
    assert.equal(normaliseUnloadReason("idle extra replica"), "extra_replica");
  });
});
