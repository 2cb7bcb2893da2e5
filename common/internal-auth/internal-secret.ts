import { randomBytes } from "node:crypto";
import { ConfigError } from "../config/config-error.js";
import type { Lease } from "../../gen/modelswap/v1/placement.js";
import { internalCrypto } from "./internal-crypto.js";
import { LEASE_TOKEN_TTL_MS, RunnerKey } from "./runner-key.js";

/** Shortest secret accepted from a file or the environment (`openssl rand -hex 32` gives 64). */
const MIN_SECRET_LENGTH = 32;

/**
 * The secret of one modelswap installation's internal planes, shared by its gateway(s) and
 * placement: made at start by `serve` (crypto.randomBytes), or read from a file that
 * standalone `placement` and `gateway` processes share. It never travels: every party
 * proves knowledge of it by an HMAC over fresh nonces, and runners get only a key derived
 * for their own id (RunnerKey).
 */
export class InternalSecret {
  private constructor(private readonly secret: Buffer) {}

  /** 256 random bits, as 64 hex digits (the key is the text, as when it is read from a file). */
  static random(): InternalSecret {
    return new InternalSecret(Buffer.from(randomBytes(32).toString("hex"), "utf8"));
  }

  /** From text (a file's content, an environment variable); throws when it is too short. */
  static fromText(text: string, source: string): InternalSecret {
    const trimmed = text.trim();
    if (trimmed.length < MIN_SECRET_LENGTH || /\s/.test(trimmed)) {
      throw new ConfigError(`${source} must hold one word of at least ${MIN_SECRET_LENGTH} characters (e.g. the output of "openssl rand -hex 32")`);
    }
    return new InternalSecret(Buffer.from(trimmed, "utf8"));
  }

  /** The form `fromText` reads (how serve hands the secret to its placement process). */
  toText(): string {
    return this.secret.toString("utf8");
  }

  runnerKey(runnerId: string): RunnerKey {
    return RunnerKey.fromBytes(Buffer.from(internalCrypto.mac(this.secret, "runner-key", runnerId), "hex"));
  }

  /** Placement's answer to a gateway's Challenge. */
  challengeProof(clientNonce: string, serverNonce: string): string {
    return internalCrypto.mac(this.secret, "placement-challenge", clientNonce, serverNonce);
  }

  /** The token a gateway signs calls with, bound to one placement process (its server nonce). */
  sessionToken(serverNonce: string, clientNonce: string): string {
    return internalCrypto.mac(this.secret, "gateway-session", serverNonce, clientNonce);
  }

  /** The lease with its token for the runner (placement, at grant). */
  signLease(lease: Lease, nowMs: number): Lease {
    return { ...lease, token: this.runnerKey(lease.runnerId).leaseToken(lease, nowMs + LEASE_TOKEN_TTL_MS) };
  }

  /** Why a lease did not come from a placement holding this secret, or undefined when it did (gateway, before it sends a prompt). */
  leaseProblem(lease: Lease, nowMs: number): string | undefined {
    const problem = this.runnerKey(lease.runnerId).leaseTokenProblem(lease.token, lease, nowMs);
    if (problem) return problem;
    return lease.token.endsWith(`.${lease.leaseId}`) ? undefined : "a lease token for another lease";
  }
}
