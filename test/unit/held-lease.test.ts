// The router's side of a held lease, as a table of stream endings: which ones park the lease
// for the next request and which give it back to placement, with what outcome.
import assert from "node:assert/strict";
import { LEASE_TOKEN_TTL_MS } from "../../common/internal-auth/runner-key.js";
import { LeaseOutcome, type AcquireMessage, type Lease } from "../../gen/modelswap/v1/placement.js";
import { HeldLease, HeldLeases } from "../../services/router/held-leases.js";

const GRANTED_AT = 1_000_000;

function held(pool = new HeldLeases()) {
  const sent: string[] = [];
  let ended = false;
  const lease = { leaseId: "l1", model: "m", runnerId: "r1" } as Lease;
  const write = (message: AcquireMessage) => {
    const m = message.message!;
    sent.push(m.$case === "park" || m.$case === "release" ? `${m.$case}:${LeaseOutcome[m.value.outcome]}` : m.$case);
  };
  return { lease: new HeldLease(lease, "", GRANTED_AT, write, () => (ended = true), pool), pool, sent, ended: () => ended };
}

describe("a lease the router holds (park or release at a stream's end)", () => {
  const table: { story: string; outcome: LeaseOutcome; atMs: number; revoked?: boolean; closed?: boolean; sent: string[] }[] = [
    { story: "a stream that ended well parks it", outcome: LeaseOutcome.LEASE_OUTCOME_OK, atMs: GRANTED_AT + 10, sent: ["park:LEASE_OUTCOME_OK"] },
    { story: "a failed runner releases it with that outcome", outcome: LeaseOutcome.LEASE_OUTCOME_RUNNER_FAILED, atMs: GRANTED_AT + 10, sent: ["release:LEASE_OUTCOME_RUNNER_FAILED"] },
    { story: "just under half the token's life still parks it", outcome: LeaseOutcome.LEASE_OUTCOME_OK, atMs: GRANTED_AT + LEASE_TOKEN_TTL_MS / 2 - 1, sent: ["park:LEASE_OUTCOME_OK"] },
    { story: "past half the token's life it goes back (the runner would refuse the token before long)", outcome: LeaseOutcome.LEASE_OUTCOME_OK, atMs: GRANTED_AT + LEASE_TOKEN_TTL_MS / 2, sent: ["release:LEASE_OUTCOME_OK"] },
    { story: "revoked while streaming, it goes back when the stream ends", outcome: LeaseOutcome.LEASE_OUTCOME_OK, atMs: GRANTED_AT + 10, revoked: true, sent: ["release:LEASE_OUTCOME_OK"] },
    { story: "a router that closed parks nothing", outcome: LeaseOutcome.LEASE_OUTCOME_OK, atMs: GRANTED_AT + 10, closed: true, sent: ["release:LEASE_OUTCOME_OK"] },
  ];
  for (const row of table) {
    it(row.story, () => {
      const { lease, pool, sent, ended } = held();
      if (row.closed) pool.close();
      if (row.revoked) lease.revoke();
      lease.end(row.outcome, row.atMs);
      assert.deepEqual(sent, row.sent);
      assert.equal(ended(), row.sent[0]!.startsWith("release"), "the Acquire call ends with a release");
      assert.equal(pool.take("m", new Set(), new Set()) !== undefined, row.sent[0]!.startsWith("park"), "a parked lease is there to take");
    });
  }

  it("a parked lease placement revokes goes back at once, idle", () => {
    const { lease, pool, sent } = held();
    lease.end(LeaseOutcome.LEASE_OUTCOME_OK, GRANTED_AT + 10);
    lease.revoke();
    assert.deepEqual(sent, ["park:LEASE_OUTCOME_OK", "release:LEASE_OUTCOME_IDLE"]);
    assert.equal(pool.take("m", new Set(), new Set()), undefined);
  });
});
