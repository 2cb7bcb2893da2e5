import type { WaiterKind } from "./placement-types.js";
import type { WaiterRecord } from "./records.js";

/**
 * Requests waiting for a model, in arrival order. Bounded by the caller (queue_max); each
 * waiter has a deadline (its own, capped by queue_timeout). Fairness: a request for a cold
 * model that waited past `fairnessMs` becomes a barrier (see `isBarrier`).
 */
export class WaitQueue {
  private readonly waiters: WaiterRecord[] = [];

  constructor(private readonly fairnessMs: number) {}

  get length(): number {
    return this.waiters.length;
  }

  /** A snapshot in arrival order (safe to iterate while waiters are removed). */
  all(): readonly WaiterRecord[] {
    return [...this.waiters];
  }

  add(id: string, model: string, kind: WaiterKind, nowMs: number, deadlineMs: number, excludeRunners: ReadonlySet<string>): WaiterRecord {
    const waiter: WaiterRecord = { id, kind, model, enqueuedMs: nowMs, deadlineMs, excludeRunners, lastPosition: 0, loadStartedMs: undefined };
    this.waiters.push(waiter);
    return waiter;
  }

  find(id: string): WaiterRecord | undefined {
    return this.waiters.find((waiter) => waiter.id === id);
  }

  remove(waiter: WaiterRecord): void {
    const index = this.waiters.indexOf(waiter);
    if (index !== -1) this.waiters.splice(index, 1);
  }

  /** Waiters of one model, in arrival order. */
  of(model: string): WaiterRecord[] {
    return this.waiters.filter((waiter) => waiter.model === model);
  }

  countOf(model: string): number {
    let count = 0;
    for (const waiter of this.waiters) if (waiter.model === model) count++;
    return count;
  }

  /** Waiters whose deadline has passed. */
  expired(nowMs: number): WaiterRecord[] {
    return this.waiters.filter((waiter) => waiter.deadlineMs <= nowMs);
  }

  /** Past the fairness bound: requests behind it get no new streams until its model is placed. */
  isBarrier(waiter: WaiterRecord, modelIsPlaced: boolean, nowMs: number): boolean {
    return !modelIsPlaced && nowMs - waiter.enqueuedMs >= this.fairnessMs;
  }

  /** Queued work protects a resident model from eviction until a cold request waited past the fairness bound. */
  protectsQueuedWork(coldWaiter: WaiterRecord, nowMs: number): boolean {
    return nowMs - coldWaiter.enqueuedMs < this.fairnessMs;
  }

  /** Each waiter whose position changed, with its new position (1-based). */
  positionChanges(): { waiter: WaiterRecord; position: number }[] {
    const changes: { waiter: WaiterRecord; position: number }[] = [];
    this.waiters.forEach((waiter, index) => {
      if (waiter.lastPosition === index + 1) return;
      waiter.lastPosition = index + 1;
      changes.push({ waiter, position: index + 1 });
    });
    return changes;
  }

  /** Moments still ahead when something about a waiter changes: its deadline and its fairness bound. */
  wakeTimes(): number[] {
    return this.waiters.flatMap((waiter) => [waiter.deadlineMs, waiter.enqueuedMs + this.fairnessMs]);
  }
}
