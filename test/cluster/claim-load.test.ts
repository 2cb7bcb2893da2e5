import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { Etcd3 } from "etcd3";
import { claimLoad } from "../../services/cluster/claim-load.js";
import { connectEtcd } from "../../services/cluster/connect-etcd.js";
import { registryKeys } from "../../services/cluster/registry-keys.js";
import { ETCD_BINARY, ETCD_INSTALL_HINT, startEtcd, type TestEtcd } from "../support/etcd-server.js";

/**
 * Which box loads a cold model is settled in etcd: gateways that disagree about the best
 * box (their registries differ for a moment) still end up sending one load to one box.
 */
describe("claimLoad: one load per cold model across gateways (real etcd)", function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  const clients: Etcd3[] = [];

  before(async function () {
    if (!existsSync(ETCD_BINARY)) {
      if (process.env.CI) throw new Error(`${ETCD_BINARY} is missing; ${ETCD_INSTALL_HINT}`);
      this.skip();
    }
    etcd = await startEtcd();
    // Each gateway has its own client (connection).
    for (let index = 0; index < 6; index++) clients.push(await connectEtcd({ etcd: [etcd.endpoint] }));
  });
  after(async () => {
    for (const client of clients) client.close();
    await etcd?.stop();
  });

  it("gives every gateway asking at once the same box, whichever box each preferred", async () => {
    const preferred = ["box-a", "box-b", "box-c", "box-a", "box-b", "box-c"];
    const claims = await Promise.all(clients.map((client, index) => claimLoad(client, "t1/", "coder", preferred[index]!, () => true, 5)));
    const boxes = new Set(claims.map((claim) => claim.box));
    assert.equal(boxes.size, 1, `claims: ${JSON.stringify(claims)}`);
    assert.equal(claims.filter((claim) => claim.won).length, 1, "exactly one gateway made the claim");
    const stored = await clients[0]!.get(registryKeys.load("t1/", "coder")).string();
    assert.equal(stored, [...boxes][0]);
  });

  it("holds the claim under a lease that expires, so it never outlives the load decision", async () => {
    await claimLoad(clients[0]!, "t2/", "chat", "box-a", () => true, 5);
    const key = await clients[0]!.get(registryKeys.load("t2/", "chat")).exec();
    const lease = key.kvs[0]!.lease;
    assert.notEqual(String(lease), "0", "the key is held by a lease");
    const ttl = await clients[0]!.leaseClient.leaseTimeToLive({ ID: lease });
    assert.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 5, `lease TTL ${ttl.TTL} s`);
  });

  it("replaces a claim naming a box that is gone (or failed this request)", async () => {
    await claimLoad(clients[0]!, "t3/", "stories", "box-dead", () => true, 5);
    const usable = (box: string) => box !== "box-dead";
    const [first, second] = await Promise.all([
      claimLoad(clients[1]!, "t3/", "stories", "box-b", usable, 5),
      claimLoad(clients[2]!, "t3/", "stories", "box-c", usable, 5),
    ]);
    assert.equal(first.box, second.box, `${JSON.stringify([first, second])}`);
    assert.notEqual(first.box, "box-dead");
    assert.equal([first, second].filter((claim) => claim.won).length, 1);
  });
});
