import type { Config } from "../../common/config/config-types.js";
import { HealthStatus } from "../../common/grpc/health.js";
import type { ServiceBinding } from "../../common/grpc/start-server.js";
import type { Logger } from "../../common/logger.js";
import type { PlacementEffects } from "./placement-types.js";

/**
 * grpc.health.v1 for placement: NOT_SERVING until a runner is up and every preloaded model
 * is resident (or has failed), then SERVING until it drains. Follows the core's effects
 * (residency events, answers to the preload waiters); reads nothing else.
 */
export class PlacementHealth {
  private readonly pendingPreloads: Set<string>;
  private runnerUp = false;
  private ready = false;
  private draining = false;
  private status: HealthStatus | undefined;

  constructor(
    config: Config,
    private readonly logger: Logger,
  ) {
    this.pendingPreloads = new Set(config.models.filter((model) => model.preload || model.pin || model.replicas.min > 1).map((model) => model.name));
  }

  binding(services: readonly ServiceBinding[]): ServiceBinding {
    this.status = new HealthStatus(services);
    this.check();
    return this.status.binding();
  }

  /** A preload finished, either way. */
  preloadSettled(model: string): void {
    this.pendingPreloads.delete(model);
    this.check();
  }

  runnerStarted(): void {
    this.runnerUp = true;
    this.check();
  }

  drain(): void {
    this.draining = true;
    this.status?.setServing(false);
  }

  check(): void {
    if (this.ready || this.draining || !this.status || !this.runnerUp || this.pendingPreloads.size > 0) return;
    this.ready = true;
    this.status.setServing(true);
    this.logger.info("placement_ready", {});
  }
}

const PRELOAD_WAITER = /^preload:(.+)$/;

/** Decorates placement's effects so that health follows them. */
export function withHealth(effects: PlacementEffects, health: PlacementHealth): PlacementEffects {
  const settledWaiter = (waiterId: string) => {
    const preload = PRELOAD_WAITER.exec(waiterId);
    if (preload) health.preloadSettled(preload[1]!);
  };
  return {
    ...effects,
    loadDone: (waiterId, model, loadMs) => {
      effects.loadDone(waiterId, model, loadMs);
      settledWaiter(waiterId);
    },
    reject: (waiterId, error) => {
      effects.reject(waiterId, error);
      settledWaiter(waiterId);
    },
    publish: (event) => {
      effects.publish(event);
      if (event.kind === "runner_started") health.runnerStarted();
    },
  };
}
