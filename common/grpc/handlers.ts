import type { sendUnaryData, ServerUnaryCall, ServerWritableStream, ServiceError } from "@grpc/grpc-js";
import { toGrpcStatus } from "../errors.js";
import type { Logger } from "../logger.js";
import { callContext } from "./call-context.js";

/**
 * Wraps handlers so that everything thrown is mapped to a status in one place
 * (errors.ts) and every call gets an AbortSignal that fires when the client
 * cancels or its deadline passes (call-context.ts).
 */
export function unaryHandler<Req, Res>(logger: Logger, handle: (request: Req, signal: AbortSignal, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const context = callContext(call);
    handle(call.request, context.signal, call)
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toGrpcStatus(error, (unexpected) => logger.error("unexpected_error", { error: unexpected })) as ServiceError),
      )
      .finally(context.dispose);
  };
}

export function serverStreamHandler<Req, Res>(logger: Logger, handle: (call: ServerWritableStream<Req, Res>, signal: AbortSignal) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>) => {
    const context = callContext(call);
    handle(call, context.signal)
      .then(
        () => {
          if (!call.cancelled) call.end();
        },
        (error: unknown) => {
          if (call.cancelled) return;
          call.emit("error", toGrpcStatus(error, (unexpected) => logger.error("unexpected_error", { error: unexpected })));
        },
      )
      .finally(context.dispose);
  };
}
