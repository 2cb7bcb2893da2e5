import { credentials, type ServiceError } from "@grpc/grpc-js";
import { parseConfig } from "../../common/config/parse-config.js";
import type { Config } from "../../common/config/config-types.js";
import { createLogger } from "../../common/logger.js";
import type { MemorySource } from "../../common/system/memory-source.js";
import { startGateway, type RunningGateway } from "../../gateway/gateway-server.js";
import { AdminClient, type ResidencyEvent } from "../../gen/modelswap/v1/admin.js";
import { InferenceClient, type GenerateRequest, type GenerateResponse, type Done } from "../../gen/modelswap/v1/inference.js";
import type { RunnerEvent } from "../../gen/modelswap/v1/runner.js";
import { startPlacement, type RunningPlacement } from "../../services/placement/placement-server.js";
import { toWireEvent } from "../../services/placement/residency-events.js";

/** A real gateway + placement (+ runner processes) on loopback, for tests that tell a user's story. */
export interface TestCluster {
  config: Config;
  placement: RunningPlacement;
  gateway: RunningGateway;
  inference: InferenceClient;
  admin: AdminClient;
  /** Every residency event placement published, in order (as WatchStatus shows them). */
  events: ResidencyEvent[];
  /** Calls `listener` with every residency event from now on, as it is published. */
  onEvent(listener: (event: ResidencyEvent) => void): void;
  /** Resolves when an event matching `predicate` has been (or is) published. */
  waitForEvent(predicate: (event: ResidencyEvent) => boolean, timeoutMs?: number): Promise<ResidencyEvent>;
  runnerEvents: { runnerId: string; event: RunnerEvent }[];
  stop(): Promise<void>;
}

/** `memorySource`: the box's memory as placement reads it (a fake for Jetson-like or discrete-GPU readings). */
export async function startCluster(document: Record<string, unknown>, baseDir = "/", memorySource?: MemorySource): Promise<TestCluster> {
  const config = parseConfig({ listen: "127.0.0.1:0", ...document, placement: { listen: "127.0.0.1:0", ...(document.placement as object) } }, baseDir);
  const logger = createLogger("test", {}, { quiet: true });
  const events: ResidencyEvent[] = [];
  const listeners: ((event: ResidencyEvent) => void)[] = [];
  const runnerEvents: { runnerId: string; event: RunnerEvent }[] = [];
  const waiting = new Set<{ predicate: (event: ResidencyEvent) => boolean; resolve: (event: ResidencyEvent) => void }>();
  const placement = await startPlacement({
    config,
    logger,
    runnerEnv: { MODELSWAP_LOG: "silent" },
    memorySource,
    onEvent: (record) => {
      const event = toWireEvent(record);
      events.push(event);
      for (const listener of listeners) listener(event);
      for (const waiter of waiting) {
        if (!waiter.predicate(event)) continue;
        waiting.delete(waiter);
        waiter.resolve(event);
      }
    },
    onRunnerEvent: (runnerId, event) => runnerEvents.push({ runnerId, event }),
  });
  const gateway = await startGateway({ config, placementAddress: placement.address, internalSecret: placement.internalSecret, logger });
  const inference = new InferenceClient(gateway.address, credentials.createInsecure());
  const admin = new AdminClient(gateway.address, credentials.createInsecure());
  return {
    config,
    placement,
    gateway,
    inference,
    admin,
    events,
    runnerEvents,
    onEvent: (listener) => void listeners.push(listener),
    waitForEvent(predicate, timeoutMs = 30_000) {
      const seen = events.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const entry = { predicate, resolve: (event: ResidencyEvent) => (clearTimeout(timer), resolve(event)) };
        const timer = setTimeout(() => {
          waiting.delete(entry);
          reject(new Error(`no matching residency event within ${timeoutMs} ms; saw: ${events.map((e) => `${e.kind}:${e.model}`).join(", ")}`));
        }, timeoutMs);
        waiting.add(entry);
      });
    },
    async stop() {
      inference.close();
      admin.close();
      await gateway.stop();
      await placement.stop();
    },
  };
}

export interface StreamResult {
  events: GenerateResponse[];
  text: string;
  /** Tokens received (the sum of the token events' counts). */
  tokens: number;
  done: Done | undefined;
  error: ServiceError | undefined;
}

export function generateRequest(partial: Partial<GenerateRequest> & { model?: string }): GenerateRequest {
  return { model: "", prompt: "Once upon a time", maxTokens: 32, task: "", resumable: false, sampling: undefined, ...partial };
}

/** Runs one Generate to its end and collects what the client saw. */
export function collect(client: InferenceClient, request: GenerateRequest, options: { deadline?: Date; onEvent?: (event: GenerateResponse, call: { cancel(): void }) => void } = {}): Promise<StreamResult> {
  const call = client.generate(request, options.deadline ? { deadline: options.deadline } : {});
  const result: StreamResult = { events: [], text: "", tokens: 0, done: undefined, error: undefined };
  return new Promise((resolve) => {
    call.on("data", (message: GenerateResponse) => {
      result.events.push(message);
      if (message.event?.$case === "token") {
        result.text += message.event.value.text;
        result.tokens += message.event.value.tokens;
      }
      if (message.event?.$case === "done") result.done = message.event.value;
      options.onEvent?.(message, call);
    });
    call.on("error", (error: ServiceError) => {
      result.error = error;
      resolve(result);
    });
    call.on("end", () => resolve(result));
  });
}

export { callUnary as unary } from "../../common/grpc/call-unary.js";
