import { LeaseOutcome, type AcquireMessage, type Lease } from "../../gen/modelswap/v1/placement.js";
import { LEASE_TOKEN_TTL_MS } from "../../common/internal-auth/runner-key.js";

/**
 * A granted lease as the router holds it: one Acquire call, one or more streams. After a
 * stream that ended well the lease is parked here instead of released, and the next request
 * for the model takes it (resume) without asking placement. Placement asks a lease back
 * with `revoke`; a parked one is then released at once, a streaming one when its stream ends.
 */
export class HeldLease {
  private state: "streaming" | "parked" | "released" = "streaming";
  private revoked = false;

  constructor(
    readonly lease: Lease,
    /** The box whose placement granted it ("" on one box). */
    readonly box: string,
    private readonly grantedAtMs: number,
    private readonly write: (message: AcquireMessage) => void,
    /** Ends the Acquire call after the release message. */
    private readonly endCall: () => void,
    private readonly pool: HeldLeases,
  ) {}

  /** The stream on this lease ended; the lease is kept for the next one when that is safe, else released. */
  end(outcome: LeaseOutcome, nowMs: number): void {
    if (this.state !== "streaming") return;
    // The runner accepts a lease token until it expires: a lease past half its life goes back.
    const fresh = nowMs - this.grantedAtMs < LEASE_TOKEN_TTL_MS / 2;
    if (outcome === LeaseOutcome.LEASE_OUTCOME_OK && !this.revoked && fresh && this.pool.accepting) {
      this.state = "parked";
      this.write({ message: { $case: "park", value: { outcome } } });
      this.pool.add(this);
      return;
    }
    this.release(outcome);
  }

  /** Placement wants the lease back. */
  revoke(): void {
    this.revoked = true;
    if (this.state === "parked") {
      this.pool.remove(this);
      this.release(LeaseOutcome.LEASE_OUTCOME_IDLE);
    }
  }

  /** The Acquire call ended (placement went away): the lease is gone with it. */
  lost(): void {
    this.pool.remove(this);
    this.state = "released";
  }

  /** Starts a stream on this parked lease (HeldLeases.take). */
  resume(): void {
    this.state = "streaming";
    this.write({ message: { $case: "resume", value: {} } });
  }

  /** Gives a parked lease back (the router closes). */
  releaseIdle(): void {
    if (this.state === "parked") this.release(LeaseOutcome.LEASE_OUTCOME_IDLE);
  }

  private release(outcome: LeaseOutcome): void {
    if (this.state === "released") return;
    this.state = "released";
    this.write({ message: { $case: "release", value: { outcome } } });
    this.endCall();
  }
}

/** The router's parked leases, by model: a warm request takes one instead of calling Acquire. */
export class HeldLeases {
  private readonly byModel = new Map<string, HeldLease[]>();
  private closed = false;

  /** Leases may be parked (until close()). */
  get accepting(): boolean {
    return !this.closed;
  }

  add(held: HeldLease): void {
    const list = this.byModel.get(held.lease.model) ?? [];
    list.push(held);
    this.byModel.set(held.lease.model, list);
  }

  remove(held: HeldLease): void {
    const list = this.byModel.get(held.lease.model);
    const index = list?.indexOf(held) ?? -1;
    if (index >= 0) list!.splice(index, 1);
  }

  /**
   * A parked lease on `model` outside the runners and boxes that failed this request, now
   * streaming again; undefined when there is none (the caller asks placement). The most
   * recently parked first: its runner's caches are warmest.
   */
  take(model: string, excludeRunners: ReadonlySet<string>, excludeBoxes: ReadonlySet<string>): HeldLease | undefined {
    const list = this.byModel.get(model);
    if (!list) return undefined;
    for (let index = list.length - 1; index >= 0; index--) {
      const held = list[index]!;
      if (excludeRunners.has(held.lease.runnerId) || excludeBoxes.has(held.box)) continue;
      list.splice(index, 1);
      held.resume();
      return held;
    }
    return undefined;
  }

  /** Gives every parked lease back and parks no more. */
  close(): void {
    this.closed = true;
    for (const list of this.byModel.values()) for (const held of list.splice(0)) held.releaseIdle();
  }
}
