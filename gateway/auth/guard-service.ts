import type { Metadata, sendUnaryData, ServerUnaryCall, ServerWritableStream, ServiceDefinition, ServiceError, UntypedHandleCall } from "@grpc/grpc-js";
import type { Scope } from "../../common/config/config-types.js";
import { invalidArgument, toGrpcStatus } from "../../common/errors.js";
import type { ServiceBinding } from "../../common/grpc/start-server.js";
import type { Logger } from "../../common/logger.js";
import type { ApiKeys } from "../../common/auth/api-keys.js";

/** A request body that did not decode as its message type (kept so the handler can refuse it). */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/**
 * The door of a public gRPC service: every call presents a key with `scope` (when keys
 * are configured) and a request that decodes, or is refused before its handler runs,
 * so nothing is looked up, leased or logged for it. Refusals are UNAUTHENTICATED,
 * PERMISSION_DENIED, or INVALID_ARGUMENT for bytes that are not the method's message
 * (grpc-js alone would answer INTERNAL).
 */
export function guardService(binding: ServiceBinding, scope: Scope, keys: ApiKeys | undefined, logger: Logger): ServiceBinding {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const implementation: Record<string, UntypedHandleCall> = {};
  for (const [method, attributes] of Object.entries(binding.definition)) {
    const action = attributes.path.split("/").slice(1).join("/").replace(/^modelswap\.v1\./, "");
    const messageName = attributes.path.split("/")[1]!.replace(/\.\w+$/, "") + "." + method[0]!.toUpperCase() + method.slice(1) + "Request";
    definition[method] = {
      ...attributes,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return attributes.requestDeserialize(bytes);
        } catch (error) {
          return new UndecodableRequest(error instanceof Error ? error.message.slice(0, 120) : "undecodable");
        }
      },
    };
    const handler = binding.implementation[method] as (call: unknown, callback?: unknown) => void;
    const refusal = (metadata: Metadata, request: unknown): Partial<ServiceError> | undefined => {
      try {
        if (keys) keys.authorize(single(metadata, "authorization"), scope, action);
        if (request instanceof UndecodableRequest) {
          throw invalidArgument(`the request is not a valid ${messageName} message (${request.reason}); use stubs generated from modelswap's protos`);
        }
        return undefined;
      } catch (error) {
        return toGrpcStatus(error, (unexpected) => logger.error("unexpected_error", { error: unexpected }));
      }
    };
    if (attributes.requestStream) throw new Error(`guardService: ${attributes.path} streams requests; not supported`);
    implementation[method] = attributes.responseStream
      ? (call: ServerWritableStream<unknown, unknown>) => {
          const refused = refusal(call.metadata, call.request);
          if (refused) call.emit("error", refused);
          else handler(call);
        }
      : (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
          const refused = refusal(call.metadata, call.request);
          if (refused) callback(refused as ServiceError);
          else handler(call, callback);
        };
  }
  return { definition: definition as ServiceDefinition, implementation };
}

/** The one value of a metadata key; two or more (or a binary one) make a value that is refused as malformed. */
function single(metadata: Metadata, key: string): string | undefined {
  const values = metadata.get(key);
  if (values.length === 0) return undefined;
  if (values.length > 1 || typeof values[0] !== "string") return "(several values)";
  return values[0];
}
