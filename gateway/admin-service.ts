import { Metadata, type CallOptions, type ClientUnaryCall, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import { deadlineOf } from "../common/grpc/call-context.js";
import { fromServiceError } from "../common/errors.js";
import { unaryHandler } from "../common/grpc/handlers.js";
import type { Logger } from "../common/logger.js";
import { AdminService, type ResidencyEvent, type WatchStatusRequest } from "../gen/modelswap/v1/admin.js";
import type { PlacementClient } from "../gen/modelswap/v1/placement.js";
import { checkName } from "../services/router/validate-request.js";

/** The public Admin service: placement decides; the gateway passes calls through. */
export function adminService(placement: PlacementClient, logger: Logger) {
  // The client's deadline and cancellation travel on to placement (a cancelled LoadModel leaves its queue).
  type Forwardable<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: Res) => void) => ClientUnaryCall;
  const forward = <Req, Res>(method: Forwardable<Req, Res>) =>
    unaryHandler(logger, async (request: Req, signal, call) => {
      // Names are bounded here, before placement copies them into errors and logs.
      const model = (request as { model?: unknown }).model;
      if (typeof model === "string") checkName("model", model);
      return new Promise<Res>((resolve, reject) => {
        const deadline = deadlineOf(call);
        const upstream = method.call(placement, request, new Metadata(), deadline ? { deadline } : {}, (error, response) =>
          error ? reject(fromServiceError(error)) : resolve(response),
        );
        signal.addEventListener("abort", () => upstream.cancel(), { once: true });
      });
    });
  const watchStatus = (call: ServerWritableStream<WatchStatusRequest, ResidencyEvent>) => {
    const upstream = placement.watchStatus({});
    upstream.on("metadata", (metadata: Metadata) => call.sendMetadata(metadata)); // subscribed upstream
    upstream.on("data", (event: ResidencyEvent) => call.write(event));
    upstream.on("error", (error: ServiceError) => {
      if (!call.cancelled) call.emit("error", { code: error.code, details: error.details });
    });
    upstream.on("end", () => call.end());
    call.on("cancelled", () => upstream.cancel());
  };
  return {
    definition: AdminService,
    implementation: {
      loadModel: forward(placement.loadModel as never),
      unloadModel: forward(placement.unloadModel as never),
      pinModel: forward(placement.pinModel as never),
      getStatus: forward(placement.getStatus as never),
      watchStatus,
    },
  };
}
