import type { Etcd3, Lease } from "etcd3";
import type { ClusterConfig } from "../../common/config/config-types.js";
import type { Logger } from "../../common/logger.js";
import type { BoxRecord } from "./box-record.js";
import { sameRecord } from "./describe-box.js";
import { registryKeys } from "./registry-keys.js";

export interface BoxRegistrationOptions {
  etcd: Etcd3;
  cluster: ClusterConfig;
  /** The box's record now, held by the lease `leaseId`. */
  describe: (leaseId: string) => BoxRecord;
  logger: Logger;
  /** Residency changes within this window are published together. */
  debounceMs?: number;
  /** Wait before granting a lease again after it was lost or refused (etcd down or restarted). */
  retryMs?: number;
}

/**
 * Keeps this box's record in etcd: under a lease with the configured TTL (kept alive
 * while the process lives; a box that dies drops out when it expires), republished on
 * every residency change (debounced) and on a timer (free memory moves with runners'
 * RSS). A lost lease (etcd restarted, or unreachable past the TTL) is granted again and
 * the record put again: the box re-registers by itself.
 */
export class BoxRegistration {
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  private published: BoxRecord | undefined;
  private publishing = false;
  private dirty = false;
  private stopped = false;
  private debounceTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly refreshTimer: NodeJS.Timeout;
  private readonly key: string;
  private readonly debounceMs: number;
  private readonly retryMs: number;

  constructor(private readonly options: BoxRegistrationOptions) {
    this.key = registryKeys.box(options.cluster.prefix, options.cluster.box);
    this.debounceMs = options.debounceMs ?? 50;
    this.retryMs = options.retryMs ?? 1000;
    this.refreshTimer = setInterval(() => this.changed(), Math.max(1000, options.cluster.leaseTtlMs / 2));
    this.refreshTimer.unref();
    void this.register();
  }

  /** Residency changed: publish the record soon (changes within the debounce window go together). */
  changed(): void {
    this.publishIn(this.debounceMs);
  }

  /** Leaves the registry at once (revokes the lease: the record goes with it). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.refreshTimer);
    clearTimeout(this.debounceTimer);
    clearTimeout(this.retryTimer);
    const lease = this.lease;
    this.lease = undefined;
    // Bounded: a box that stops while etcd is down leaves when its lease expires instead.
    await lease?.revoke({ deadline: Date.now() + 1000 }).catch(() => undefined);
  }

  private async register(): Promise<void> {
    if (this.stopped) return;
    const ttlSeconds = this.options.cluster.leaseTtlMs / 1000;
    const lease = this.options.etcd.lease(ttlSeconds);
    lease.on("lost", (error) => {
      if (this.lease !== lease || this.stopped) return;
      this.options.logger.warn("cluster_lease_lost", { box: this.options.cluster.box, error: error.message });
      this.lease = undefined;
      this.leaseId = undefined;
      this.published = undefined;
      this.retryLater();
    });
    try {
      const leaseId = await lease.grant();
      if (this.stopped) return void (await lease.revoke().catch(() => undefined));
      this.lease = lease;
      this.leaseId = leaseId;
      this.published = undefined;
      this.options.logger.info("cluster_registered", { box: this.options.cluster.box, key: this.key, leaseId, ttlMs: this.options.cluster.leaseTtlMs });
      await this.publish();
    } catch (error) {
      lease.release();
      this.options.logger.warn("cluster_register_failed", { box: this.options.cluster.box, error: (error as Error).message });
      this.retryLater();
    }
  }

  private publishIn(delayMs: number): void {
    if (this.stopped || this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.publish();
    }, delayMs);
  }

  private retryLater(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.register();
    }, this.retryMs);
  }

  /** One put at a time; a change during a put is published right after it. */
  private async publish(): Promise<void> {
    const lease = this.lease;
    if (!lease || this.leaseId === undefined || this.stopped) return;
    if (this.publishing) {
      this.dirty = true;
      return;
    }
    const record = this.options.describe(this.leaseId);
    if (sameRecord(this.published, record)) return;
    this.publishing = true;
    try {
      await lease.put(this.key).value(JSON.stringify(record));
      if (this.lease === lease) this.published = record;
    } catch (error) {
      this.options.logger.warn("cluster_publish_failed", { box: this.options.cluster.box, error: (error as Error).message });
      this.publishing = false;
      this.dirty = false;
      return this.publishIn(this.retryMs);
    }
    this.publishing = false;
    if (this.dirty) {
      this.dirty = false;
      this.changed();
    }
  }
}
