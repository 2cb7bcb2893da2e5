import type { PlacementCore } from "./placement-core.js";

/**
 * Feeds events to the placement core and keeps one timer armed for the core's next
 * deadline (queue deadlines, idle TTLs, fairness bounds, spawn backoff).
 */
export class CoreDriver {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly core: PlacementCore,
    private readonly clock: { now(): number },
  ) {}

  /** Runs one core event, then re-arms the timer. */
  run<T>(step: (core: PlacementCore) => T): T {
    try {
      return step(this.core);
    } finally {
      this.arm();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    const wake = this.core.nextWakeMs();
    if (wake === undefined) return;
    this.timer = setTimeout(() => this.run((core) => core.tick()), Math.max(0, wake - this.clock.now()) + 1);
    this.timer.unref();
  }
}
