import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Metadata } from "@grpc/grpc-js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { unavailable } from "../../common/errors.js";
import { formatBytes } from "../../common/format-bytes.js";
import type { Logger } from "../../common/logger.js";
import { OPERATION } from "../../common/telemetry/attributes.js";
import { LoadingPhase, type Done, type GenerateResponse } from "../../gen/modelswap/v1/inference.js";
import { validateChat, validateGenerate, type ValidatedRequest } from "../../services/router/validate-request.js";
import type { RunGenerate } from "../run-generate.js";
import { httpErrorOf } from "./openai-errors.js";
import { chatCompletionRequest, completionRequest, type OpenAiCall } from "./openai-requests.js";
import { chunkObject, completionObject, finishReasonOf, usageChunk, type CompletionIdentity, type CompletionKind } from "./openai-responses.js";
import { SseStream } from "./sse-stream.js";

export interface CompletionRoutesOptions {
  runGenerate: RunGenerate;
  maxPromptBytes: number;
  logger: Logger;
}

/**
 * POST /v1/chat/completions and POST /v1/completions: the OpenAI request is translated,
 * validated like a gRPC one, and run through the same router (queueing, failover,
 * traces, metrics). The answer is one JSON object, or with `stream: true` server-sent
 * events. A client that disconnects cancels its request: the runner stops and the slot frees.
 */
export function registerCompletionRoutes(app: FastifyInstance, options: CompletionRoutesOptions): void {
  const { maxPromptBytes } = options;
  app.post("/v1/chat/completions", (request, reply) =>
    serveCompletion(request, reply, "chat", chatCompletionRequest(request.body), (chat) => validateChat(chat, maxPromptBytes), options),
  );
  app.post("/v1/completions", (request, reply) =>
    serveCompletion(request, reply, "text", completionRequest(request.body), (generate) => validateGenerate(generate, maxPromptBytes), options),
  );
}

async function serveCompletion<Request>(
  request: FastifyRequest,
  reply: FastifyReply,
  kind: CompletionKind,
  call: OpenAiCall<Request>,
  validate: (request: Request) => ValidatedRequest,
  options: CompletionRoutesOptions,
): Promise<unknown> {
  const validated = validate(call.request);
  // The response closing before it finished means the client went away: stop the request.
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  const identity: CompletionIdentity = {
    kind,
    id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID()}`,
    created: Math.floor(Date.now() / 1000),
    model: validated.model || validated.task,
  };
  const run = (sink: (event: GenerateResponse) => void | Promise<void>) =>
    options.runGenerate({
      request: validated,
      operation: kind === "chat" ? OPERATION.chat : OPERATION.generate,
      traceCarrier: traceCarrier(request.headers),
      signal: controller.signal,
      deadline: undefined,
      sink,
    });

  if (!call.stream) {
    let text = "";
    let done: Done | undefined;
    await run((event) => {
      if (event.event?.$case === "token") text += event.event.value.text;
      else if (event.event?.$case === "done") done = event.event.value;
    });
    if (!done) throw unavailable("the stream ended without a result; retry");
    return reply.send(completionObject({ ...identity, model: done.model || identity.model }, text, done));
  }

  const sse = new SseStream(reply.raw);
  const open = () => {
    if (sse.opened) return;
    reply.hijack(); // from here on the response is ours: status 200 and events
    sse.open();
    if (kind === "chat") void sse.data(chunkObject(identity, { role: true, text: "" }));
  };
  try {
    await run((event) => {
      const e = event.event;
      if (!e) return;
      open();
      switch (e.$case) {
        case "queued":
          return sse.comment(`queued: position ${e.value.position} for ${e.value.model}`);
        case "loading":
          if (e.value.phase === LoadingPhase.LOADING_PHASE_DOWNLOADING) {
            return sse.comment(`downloading ${e.value.model}: ${e.value.totalBytes > 0 ? `${formatBytes(e.value.downloadedBytes)} of ${formatBytes(e.value.totalBytes)}` : "started"}`);
          }
          return sse.comment(`loading ${e.value.model}: ${Math.round(e.value.progress * 100)}%`);
        case "token":
          return sse.data(chunkObject(identity, { text: e.value.text }));
        case "done": {
          const last = sse.data(chunkObject(identity, { finishReason: finishReasonOf(e.value) }));
          return call.includeUsage ? sse.data(usageChunk(identity, e.value)) : last;
        }
      }
    });
  } catch (error) {
    if (!sse.opened) throw error; // nothing sent yet: the error handler answers with its status
    if (!controller.signal.aborted) await sse.data(httpErrorOf(error, (unexpected) => options.logger.error("unexpected_error", { error: unexpected })).body);
  }
  open();
  sse.end();
  return reply;
}

/** The caller's W3C trace context from HTTP headers, in the metadata form the tracing reads. */
function traceCarrier(headers: IncomingHttpHeaders): Metadata | undefined {
  let metadata: Metadata | undefined;
  for (const key of ["traceparent", "tracestate", "baggage"]) {
    const value = headers[key];
    if (typeof value !== "string" || value.length > 1024) continue;
    try {
      (metadata ??= new Metadata()).set(key, value);
    } catch {
      // not a legal header value: no parent context
    }
  }
  return metadata;
}
