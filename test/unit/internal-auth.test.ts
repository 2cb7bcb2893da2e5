// The internal planes' proofs: lease tokens a runner checks, the mutual challenge of the
// control stream, and the secret file standalone placement and gateway share.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "../../common/config/config-error.js";
import { internalCrypto } from "../../common/internal-auth/internal-crypto.js";
import { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import { LEASE_TOKEN_TTL_MS, RunnerKey, type LeaseFields } from "../../common/internal-auth/runner-key.js";
import { secretFromFile } from "../../common/internal-auth/secret-file.js";
import type { Lease } from "../../gen/modelswap/v1/placement.js";

const NOW = 1_700_000_000_000;
const lease: Lease = {
  leaseId: "lease-7",
  model: "stories",
  runnerId: "r100-ab12-1",
  runnerAddress: "127.0.0.1:40001",
  queueMs: 0,
  loadMs: 0,
  defaultSampling: undefined,
  contextSize: 512,
  token: "",
};

describe("internal planes: lease tokens, challenges, the secret file", () => {
  const secret = InternalSecret.fromText("a".repeat(64), "test");
  const signed = secret.signLease(lease, NOW);
  const key = secret.runnerKey(lease.runnerId);
  const here: Omit<LeaseFields, "leaseId"> = { model: lease.model, runnerId: lease.runnerId, runnerAddress: lease.runnerAddress };

  it("opens a stream only with a token of this runner, model and address, until it expires", () => {
    const cases: { name: string; token: string | undefined; key?: RunnerKey; at?: Partial<typeof here>; nowMs?: number; problem: string | undefined }[] = [
      { name: "placement's token", token: signed.token, problem: undefined },
      { name: "just before expiry", token: signed.token, nowMs: NOW + LEASE_TOKEN_TTL_MS, problem: undefined },
      { name: "no token", token: undefined, problem: "no lease token" },
      { name: "garbage", token: "not-a-token", problem: "a malformed lease token" },
      { name: "another model", token: signed.token, at: { model: "big" }, problem: "a lease token that does not verify" },
      { name: "another runner's key", token: signed.token, key: secret.runnerKey("r100-ab12-2"), problem: "a lease token that does not verify" },
      { name: "another address", token: signed.token, at: { runnerAddress: "127.0.0.1:40002" }, problem: "a lease token that does not verify" },
      { name: "a later expiry written in", token: signed.token.replace(/^\d+/, String(NOW + 10 * LEASE_TOKEN_TTL_MS)), problem: "a lease token that does not verify" },
      { name: "another lease id written in", token: signed.token.replace(/lease-7$/, "lease-8"), problem: "a lease token that does not verify" },
      { name: "expired", token: signed.token, nowMs: NOW + LEASE_TOKEN_TTL_MS + 1, problem: "an expired lease token" },
      { name: "another installation's", token: InternalSecret.fromText("b".repeat(64), "test").signLease(lease, NOW).token, problem: "a lease token that does not verify" },
    ];
    for (const c of cases) {
      assert.equal((c.key ?? key).leaseTokenProblem(c.token, { ...here, ...c.at }, c.nowMs ?? NOW), c.problem, c.name);
    }
  });

  it("lets the gateway check a lease before it sends a prompt to the runner address it names", () => {
    assert.equal(secret.leaseProblem(signed, NOW), undefined);
    assert.equal(secret.leaseProblem({ ...signed, runnerAddress: "127.0.0.1:6666" }, NOW), "a lease token that does not verify");
    assert.equal(secret.leaseProblem({ ...signed, leaseId: "lease-9" }, NOW), "a lease token for another lease");
    assert.equal(secret.leaseProblem({ ...lease, token: "" }, NOW), "no lease token");
  });

  it("keeps each proof to its purpose: placement's answer is never a runner's hello, nor another runner's", () => {
    const runnerNonce = internalCrypto.nonce();
    const placementNonce = internalCrypto.nonce();
    const placementProof = key.placementProof(runnerNonce, placementNonce);
    assert.ok(internalCrypto.sameMac(placementProof, key.placementProof(runnerNonce, placementNonce)));
    assert.ok(!internalCrypto.sameMac(placementProof, key.runnerProof(placementNonce, runnerNonce)), "a reflected proof is not a hello");
    assert.ok(!internalCrypto.sameMac(placementProof, key.runnerProof(runnerNonce, placementNonce)));
    assert.ok(!internalCrypto.sameMac(placementProof, secret.runnerKey("r100-ab12-2").placementProof(runnerNonce, placementNonce)));
    assert.notEqual(secret.challengeProof(runnerNonce, placementNonce), secret.sessionToken(runnerNonce, placementNonce));
    assert.ok(!internalCrypto.sameMac(undefined, placementProof));
    assert.ok(!internalCrypto.sameMac(placementProof.toUpperCase(), placementProof), "only lower-case hex");
  });

  it("derives the same runner key from the same secret (a restarted placement adopts its runners), and a key travels as text", () => {
    const again = InternalSecret.fromText(secret.toText(), "test").runnerKey(lease.runnerId);
    assert.equal(again.toText(), key.toText());
    assert.equal(RunnerKey.fromText(key.toText())!.toText(), key.toText());
    assert.equal(RunnerKey.fromText("abc"), undefined);
    assert.equal(InternalSecret.fromText(InternalSecret.random().toText(), "x").toText().length, 64);
    assert.throws(() => InternalSecret.fromText("short", "MODELSWAP_INTERNAL_SECRET"), /MODELSWAP_INTERNAL_SECRET must hold one word of at least 32 characters/);
  });

  describe("the secret file", () => {
    let directory: string;
    beforeEach(() => (directory = mkdtempSync(path.join(tmpdir(), "modelswap-secret-"))));
    afterEach(() => rmSync(directory, { recursive: true, force: true }));

    it("is made once, private (0600 in a 0700 folder), and read back by the other process", () => {
      const file = path.join(directory, "private", "secret");
      const made = secretFromFile(file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
      assert.equal(secretFromFile(file).toText(), made.toText());
      assert.equal(readFileSync(file, "utf8").trim(), made.toText());
    });

    it("is refused when others may read it, or when it is too short, saying what to do", () => {
      const file = path.join(directory, "secret");
      writeFileSync(file, "x".repeat(40), { mode: 0o644 });
      chmodSync(file, 0o644);
      assert.throws(() => secretFromFile(file), (error: Error) => error instanceof ConfigError && /readable or writable by others \(mode 644\); run: chmod 600/.test(error.message));
      chmodSync(file, 0o600);
      assert.equal(secretFromFile(file).toText(), "x".repeat(40));
      writeFileSync(file, "tooshort\n");
      assert.throws(() => secretFromFile(file), /must hold one word of at least 32 characters/);
    });
  });
});
