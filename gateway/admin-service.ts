import type { ServerWritableStream, ServiceError } from "@grpc/grpc-js";
import { fromServiceError } from "../common/errors.js";
import { unaryHandler } from "../common/grpc/handlers.js";
import type { Logger } from "../common/logger.js";
import { AdminService, type ResidencyEvent, type WatchStatusRequest } from "../gen/modelswap/v1/admin.js";
import type { PlacementClient } from "../gen/modelswap/v1/placement.js";

/** The public Admin service: placement decides; the gateway passes calls through. */
export function adminService(placement: PlacementClient, logger: Logger) {
  const forward = <Req, Res>(method: (request: Req, callback: (error: ServiceError | null, response: Res) => void) => unknown) =>
    unaryHandler(logger, (request: Req) =>
      new Promise<Res>((resolve, reject) => method.call(placement, request, (error, response) => (error ? reject(fromServiceError(error)) : resolve(response)))),
    );
  const watchStatus = (call: ServerWritableStream<WatchStatusRequest, ResidencyEvent>) => {
    const upstream = placement.watchStatus({});
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
