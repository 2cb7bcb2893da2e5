import assert from "node:assert/strict";
import { ConfigError } from "../../common/config/config-error.js";
import type { ClusterConfig } from "../../common/config/config-types.js";
import { parseConfig } from "../../common/config/parse-config.js";
import { runnerListenAddress } from "../../services/cluster/runner-listen-address.js";

const withCluster = (cluster: unknown) => ({
  budget: "600MiB",
  models: [{ name: "stories", path: "/m/stories.gguf" }],
  cluster,
});

describe("config: cluster (more than one box)", () => {
  it("is absent unless configured: one box, no registry", () => {
    assert.equal(parseConfig({ budget: "1GiB", models: [{ name: "a", path: "/a.gguf" }] }, "/").cluster, undefined);
  });

  const accepted: { name: string; cluster: unknown; env?: Record<string, string>; expect: ClusterConfig }[] = [
    {
      name: "the README example, with defaults filled",
      cluster: { etcd: ["http://127.0.0.1:2379"], box: "box-a" },
      expect: { etcd: ["http://127.0.0.1:2379"], box: "box-a", advertise: undefined, leaseTtlMs: 5000, prefix: "modelswap/" },
    },
    {
      name: "one endpoint as a string, advertise, ttl and prefix set",
      cluster: { etcd: "https://etcd.local:2379", box: "jetson-1", advertise: "10.0.0.7:50052", lease_ttl: "10s", prefix: "lab/" },
      expect: { etcd: ["https://etcd.local:2379"], box: "jetson-1", advertise: "10.0.0.7:50052", leaseTtlMs: 10_000, prefix: "lab/" },
    },
    {
      name: "box and advertise from the environment (Kubernetes: node name, pod IP)",
      cluster: { etcd: ["http://etcd-0.etcd:2379", "http://etcd-1.etcd:2379"], box: "${NODE_NAME}", advertise: "${POD_IP}:50052" },
      env: { NODE_NAME: "orin-2", POD_IP: "10.42.1.9" },
      expect: { etcd: ["http://etcd-0.etcd:2379", "http://etcd-1.etcd:2379"], box: "orin-2", advertise: "10.42.1.9:50052", leaseTtlMs: 5000, prefix: "modelswap/" },
    },
  ];
  for (const { name, cluster, env, expect } of accepted) {
    it(`accepts ${name}`, () => {
      assert.deepEqual(parseConfig(withCluster(cluster), "/", env ?? {}).cluster, expect);
    });
  }

  const refused: { name: string; cluster: unknown; env?: Record<string, string>; message: RegExp }[] = [
    { name: "a list instead of a mapping", cluster: ["http://e:2379"], message: /^cluster must be a mapping/ },
    { name: "an unknown key", cluster: { etcd: ["http://e:2379"], box: "a", ttl: "5s" }, message: /cluster\.ttl is not a known setting/ },
    { name: "no etcd", cluster: { box: "a" }, message: /cluster\.etcd must be a list of strings/ },
    { name: "an empty etcd list", cluster: { etcd: [], box: "a" }, message: /cluster\.etcd must list at least one etcd endpoint/ },
    { name: "an endpoint without a scheme", cluster: { etcd: ["127.0.0.1:2379"], box: "a" }, message: /cluster\.etcd\[0\] must be an endpoint like http:\/\/127\.0\.0\.1:2379/ },
    { name: "no box name", cluster: { etcd: ["http://e:2379"] }, message: /cluster\.box must be a non-empty string/ },
    { name: "a box name with a slash", cluster: { etcd: ["http://e:2379"], box: "a/b" }, message: /cluster\.box must be 1-64 letters/ },
    { name: "a box name from an unset variable", cluster: { etcd: ["http://e:2379"], box: "${NODE_NAME}" }, message: /cluster\.box uses \$\{NODE_NAME\}, which is not set/ },
    { name: "advertise without a port", cluster: { etcd: ["http://e:2379"], box: "a", advertise: "10.0.0.7" }, message: /cluster\.advertise must be host:port/ },
    { name: "advertise on a unix socket", cluster: { etcd: ["http://e:2379"], box: "a", advertise: "unix:/run/p.sock" }, message: /cluster\.advertise must be host:port that other boxes reach/ },
    { name: "advertise on the wildcard address", cluster: { etcd: ["http://e:2379"], box: "a", advertise: "0.0.0.0:50052" }, message: /which no other box can dial/ },
    { name: "a lease TTL under a second", cluster: { etcd: ["http://e:2379"], box: "a", lease_ttl: "500ms" }, message: /cluster\.lease_ttl must be whole seconds from 1s to 1h/ },
    { name: "a lease TTL of fractional seconds", cluster: { etcd: ["http://e:2379"], box: "a", lease_ttl: "2.5s" }, message: /cluster\.lease_ttl must be whole seconds/ },
    { name: "a prefix without the trailing slash", cluster: { etcd: ["http://e:2379"], box: "a", prefix: "lab" }, message: /cluster\.prefix must be .* ending in '\/'/ },
  ];
  for (const { name, cluster, env, message } of refused) {
    it(`refuses ${name}, naming the field`, () => {
      assert.throws(() => parseConfig(withCluster(cluster), "/", env ?? {}), (error: unknown) => error instanceof ConfigError && message.test(error.message));
    });
  }
});

describe("config: cluster.advertise and placement.listen", () => {
  const table: { listen: string; advertise?: string; ok: boolean }[] = [
    { listen: "127.0.0.1:50052", ok: true },
    { listen: "0.0.0.0:50052", ok: false },
    { listen: "[::]:50052", ok: false },
    { listen: "unix:/run/modelswap/placement.sock", ok: false },
    { listen: "0.0.0.0:50052", advertise: "10.0.0.7:50052", ok: true },
  ];
  for (const { listen, advertise, ok } of table) {
    it(`${ok ? "accepts" : "refuses"} placement.listen ${listen}${advertise ? ` with advertise ${advertise}` : " without advertise"}`, () => {
      const document = { ...withCluster({ etcd: ["http://e:2379"], box: "a", ...(advertise ? { advertise } : {}) }), placement: { listen } };
      if (ok) assert.doesNotThrow(() => parseConfig(document, "/"));
      else assert.throws(() => parseConfig(document, "/"), /which other boxes cannot dial: set cluster\.advertise/);
    });
  }
});

describe("runners listen where other boxes' gateways reach them", () => {
  const table: { cluster?: Record<string, unknown>; listen?: string; expect: string | undefined }[] = [
    { expect: undefined },
    { cluster: { etcd: ["http://e:2379"], box: "a" }, expect: "127.0.0.1:0" },
    { cluster: { etcd: ["http://e:2379"], box: "a", advertise: "10.0.0.7:50052" }, listen: "0.0.0.0:50052", expect: "10.0.0.7:0" },
    { cluster: { etcd: ["http://e:2379"], box: "a", advertise: "[fd00::7]:50052" }, listen: "[::]:50052", expect: "[fd00::7]:0" },
    { cluster: { etcd: ["http://e:2379"], box: "a" }, listen: "192.168.1.20:50052", expect: "192.168.1.20:0" },
  ];
  for (const { cluster, listen, expect } of table) {
    it(`${cluster ? `cluster, advertise ${cluster.advertise ?? "unset"}, placement.listen ${listen ?? "default"}` : "one box"} -> ${expect ?? "loopback (runner default)"}`, () => {
      const document = { budget: "1GiB", models: [{ name: "a", path: "/a.gguf" }], ...(cluster ? { cluster } : {}), ...(listen ? { placement: { listen } } : {}) };
      assert.equal(runnerListenAddress(parseConfig(document, "/")), expect);
    });
  }
});
