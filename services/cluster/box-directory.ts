import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import type { Logger } from "../../common/logger.js";
import { parseBoxRecord, type BoxRecord } from "./box-record.js";
import { registryKeys } from "./registry-keys.js";

/**
 * A gateway's view of the registry: every box's record, read once and then kept current
 * by an etcd watch. When the watch breaks (etcd restarted, perhaps empty, with its
 * revisions started again) the directory reads everything again and watches from there;
 * until then it keeps the boxes it knew.
 */
export class BoxDirectory {
  private readonly records = new Map<string, BoxRecord>();
  private watcher: Watcher | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Failed reads in a row (logged once per streak). */
  private failures = 0;
  private readonly prefix: string;
  private readonly ready: Promise<void>;

  constructor(
    private readonly etcd: Etcd3,
    registryPrefix: string,
    private readonly logger: Logger,
    private readonly options: { retryMs?: number; onChange?: (boxes: BoxRecord[]) => void } = {},
  ) {
    this.prefix = registryKeys.boxes(registryPrefix);
    this.ready = this.resync();
  }

  /** Resolves once the registry was read (or the first read failed: retries continue). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /** The boxes registered now, by name. */
  boxes(): BoxRecord[] {
    return [...this.records.values()].sort((a, b) => a.box.localeCompare(b.box));
  }

  get(box: string): BoxRecord | undefined {
    return this.records.get(box);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    try {
      const response = await this.etcd.getAll().prefix(this.prefix).exec();
      this.records.clear();
      for (const kv of response.kvs) this.apply(kv);
      this.changed();
      const watcher = await this.etcd.watch().prefix(this.prefix).startRevision(String(BigInt(response.header.revision) + 1n)).create();
      if (this.stopped) return void (await watcher.cancel().catch(() => undefined));
      this.watcher = watcher;
      watcher.on("put", (kv) => {
        this.apply(kv);
        this.changed();
      });
      watcher.on("delete", (kv) => {
        this.records.delete(this.boxName(kv));
        this.changed();
      });
      watcher.on("disconnected", () => this.restart(watcher));
      watcher.on("error", () => this.restart(watcher));
      this.logger.info("cluster_directory_synced", { boxes: this.boxes().map((box) => box.box), revision: response.header.revision, afterFailures: this.failures });
      this.failures = 0;
    } catch (error) {
      if (this.failures++ === 0) this.logger.warn("cluster_directory_sync_failed", { error: (error as Error).message, retryMs: this.retryMs() });
      this.resyncLater();
    }
  }

  /** The watch broke: drop it (etcd's revisions may have started again) and read everything anew. */
  private restart(watcher: Watcher): void {
    if (this.watcher !== watcher) return;
    this.watcher = undefined;
    void watcher.cancel().catch(() => undefined);
    this.resyncLater();
  }

  private resyncLater(): void {
    if (this.stopped || this.resyncTimer) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = undefined;
      void this.resync();
    }, this.retryMs());
  }

  private retryMs(): number {
    return this.options.retryMs ?? 500;
  }

  private changed(): void {
    this.options.onChange?.(this.boxes());
  }

  private apply(kv: IKeyValue): void {
    const name = this.boxName(kv);
    const record = parseBoxRecord(kv.value.toString("utf8"));
    if (record && record.box === name) this.records.set(name, record);
    else this.logger.warn("cluster_record_ignored", { key: kv.key.toString("utf8") });
  }

  private boxName(kv: IKeyValue): string {
    return kv.key.toString("utf8").slice(this.prefix.length);
  }
}
