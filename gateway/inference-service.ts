import type { ServerWritableStream } from "@grpc/grpc-js";
import { serverStreamHandler, unaryHandler } from "../common/grpc/handlers.js";
import { writeWithBackpressure } from "../common/grpc/stream-writer.js";
import type { Logger } from "../common/logger.js";
import { OPERATION } from "../common/telemetry/attributes.js";
import { traceGenerate } from "../common/telemetry/request-tracing.js";
import { InferenceService, type ChatRequest, type GenerateRequest, type GenerateResponse } from "../gen/modelswap/v1/inference.js";
import type { Router } from "../services/router/router.js";
import { validateChat, validateGenerate, type ValidatedRequest } from "../services/router/validate-request.js";

/** The public Inference service: validation at the door, then the router. */
export function inferenceService(router: Router, logger: Logger, maxPromptBytes: number) {
  const stream = <Req>(validate: (request: Req) => ValidatedRequest, operation: string = OPERATION.generate) =>
    serverStreamHandler(logger, async (call: ServerWritableStream<Req, GenerateResponse>, signal) => {
      const request = validate(call.request);
      const deadline = call.getDeadline();
      // The request's root span (`generate`); placement and runner calls below carry its context.
      const info = { operation, model: request.model, task: request.task, maxTokens: request.maxTokens, temperature: request.sampling?.temperature };
      await traceGenerate(call.metadata, info, (observe) =>
        router.generate(request, signal, deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined, (event) => {
          observe(event);
          return writeWithBackpressure(call, event);
        }),
      );
    });
  return {
    definition: InferenceService,
    implementation: {
      generate: stream((request: GenerateRequest) => validateGenerate(request, maxPromptBytes)),
      chat: stream((request: ChatRequest) => validateChat(request, maxPromptBytes), OPERATION.chat),
      listModels: unaryHandler(logger, async () => ({ models: await router.listModels() })),
    },
  };
}
