import type { ServerWritableStream } from "@grpc/grpc-js";
import { deadlineOf } from "../common/grpc/call-context.js";
import { serverStreamHandler, unaryHandler } from "../common/grpc/handlers.js";
import { writeWithBackpressure } from "../common/grpc/stream-writer.js";
import type { Logger } from "../common/logger.js";
import { OPERATION } from "../common/telemetry/attributes.js";
import { InferenceService, type ChatRequest, type GenerateRequest, type GenerateResponse } from "../gen/modelswap/v1/inference.js";
import type { Router } from "../services/router/router.js";
import { validateChat, validateGenerate, type ValidatedRequest } from "../services/router/validate-request.js";
import type { RunGenerate } from "./run-generate.js";

/** The public Inference service: validation at the door, then the router. */
export function inferenceService(router: Router, runGenerate: RunGenerate, logger: Logger, maxPromptBytes: number) {
  const stream = <Req>(validate: (request: Req) => ValidatedRequest, operation: string = OPERATION.generate) =>
    serverStreamHandler(logger, async (call: ServerWritableStream<Req, GenerateResponse>, signal) => {
      const request = validate(call.request);
      await runGenerate({
        request,
        operation,
        traceCarrier: call.metadata,
        signal,
        deadline: deadlineOf(call),
        sink: (event) => writeWithBackpressure(call, event),
      });
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
