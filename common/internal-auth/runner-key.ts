import { internalCrypto } from "./internal-crypto.js";

/** What a lease token vouches for: this lease, on this model, in this runner at this address. */
export interface LeaseFields {
  leaseId: string;
  model: string;
  runnerId: string;
  runnerAddress: string;
}

/** How long after its grant a lease token opens a stream (the router uses it at once). */
export const LEASE_TOKEN_TTL_MS = 5 * 60_000;

/**
 * The key one runner holds: HMAC(internal secret, runner id), derived by placement and
 * handed to the runner in its environment (never argv: /proc/PID/cmdline is world-readable).
 * A runner never sees the internal secret itself, so a runner's key opens that runner only.
 * Placement (which derives it again after a restart, so runners are adopted) and the
 * gateway (which checks leases before it sends a prompt) recompute it from the secret.
 *
 * The control stream is a mutual challenge: the runner dials with a nonce; placement
 * answers in its response headers with a nonce of its own and `placementProof`; only when
 * that verifies does the runner send its hello with `runnerProof`, and obey commands. A
 * process squatting on placement's port learns nothing it can replay, and is obeyed in nothing.
 */
export class RunnerKey {
  private constructor(private readonly key: Buffer) {}

  static fromBytes(key: Buffer): RunnerKey {
    return new RunnerKey(key);
  }

  /** From the hex text of `toText()`; undefined when it is not 64 hex digits. */
  static fromText(text: string | undefined): RunnerKey | undefined {
    return text !== undefined && /^[0-9a-f]{64}$/.test(text) ? new RunnerKey(Buffer.from(text, "hex")) : undefined;
  }

  toText(): string {
    return this.key.toString("hex");
  }

  placementProof(runnerNonce: string, placementNonce: string): string {
    return internalCrypto.mac(this.key, "control-placement", runnerNonce, placementNonce);
  }

  runnerProof(placementNonce: string, runnerNonce: string): string {
    return internalCrypto.mac(this.key, "control-runner", placementNonce, runnerNonce);
  }

  /** `<expires at ms>.<mac>.<lease id>`: the lease id last, so that it may contain dots. */
  leaseToken(lease: LeaseFields, expiresAtMs: number): string {
    return `${expiresAtMs}.${this.leaseMac(lease, expiresAtMs)}.${lease.leaseId}`;
  }

  /** Why `token` does not open a stream for `lease` (its lease id comes from the token), or undefined when it does. */
  leaseTokenProblem(token: string | undefined, lease: Omit<LeaseFields, "leaseId">, nowMs: number): string | undefined {
    if (!token) return "no lease token";
    const match = /^(\d{1,15})\.([0-9a-f]{64})\.(.{1,128})$/s.exec(token);
    if (!match) return "a malformed lease token";
    const expiresAtMs = Number(match[1]);
    if (!internalCrypto.sameMac(match[2], this.leaseMac({ ...lease, leaseId: match[3]! }, expiresAtMs))) return "a lease token that does not verify";
    if (expiresAtMs < nowMs) return "an expired lease token";
    return undefined;
  }

  private leaseMac(lease: LeaseFields, expiresAtMs: number): string {
    return internalCrypto.mac(this.key, "lease", String(expiresAtMs), lease.runnerId, lease.runnerAddress, lease.model, lease.leaseId);
  }
}
