import type { Metadata } from "@grpc/grpc-js";
import { traceGenerate } from "../common/telemetry/request-tracing.js";
import type { EventSink, Router } from "../services/router/router.js";
import type { ValidatedRequest } from "../services/router/validate-request.js";

export interface GenerateRun {
  /** Already validated at the door (validateGenerate / validateChat). */
  request: ValidatedRequest;
  /** gen_ai.operation.name (OPERATION.generate or OPERATION.chat). */
  operation: string;
  /** The caller's W3C trace context (gRPC metadata, or HTTP headers copied into metadata). */
  traceCarrier: Metadata | undefined;
  /** Fires when the client cancels or disconnects: generation stops and the slot frees. */
  signal: AbortSignal;
  deadline: Date | undefined;
  sink: EventSink;
}

export type RunGenerate = (run: GenerateRun) => Promise<void>;

/**
 * One request through the router inside its root `generate` span and metrics: what
 * both public protocols (gRPC and the OpenAI-compatible HTTP API) call.
 */
export function generateRunner(router: Router, modelLabel: (nameOrAlias: string) => string): RunGenerate {
  return ({ request, operation, traceCarrier, signal, deadline, sink }) => {
    const info = { operation, model: request.model, task: request.task, maxTokens: request.maxTokens, temperature: request.sampling?.temperature, modelLabel };
    return traceGenerate(traceCarrier, info, (observe) =>
      router.generate(request, signal, deadline, (event) => {
        observe(event);
        return sink(event);
      }),
    );
  };
}
