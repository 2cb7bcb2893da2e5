import type { sendUnaryData, ServerUnaryCall, ServerWritableStream, ServiceError, UntypedHandleCall } from "@grpc/grpc-js";
import { invalidArgument, toGrpcStatus, unauthenticated } from "../../common/errors.js";
import { unaryHandler } from "../../common/grpc/handlers.js";
import type { ServiceBinding } from "../../common/grpc/start-server.js";
import { internalCrypto } from "../../common/internal-auth/internal-crypto.js";
import { INTERNAL_METADATA, singleValue } from "../../common/internal-auth/internal-metadata.js";
import type { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import type { Logger } from "../../common/logger.js";
import { InternalAuthService, type ChallengeRequest, type ChallengeResponse } from "../../gen/modelswap/v1/internal_auth.js";

/**
 * Placement's side of the gateway handshake (common/internal-auth/placement-client.ts).
 * InternalAuth/Challenge proves this placement holds the secret; the session token it
 * leads to is bound to this process's nonce, so a token is worth nothing to any other
 * process. `guard` refuses every call of a service that carries no valid token, before its
 * handler runs: no lease, no load, no status for callers without the secret.
 */
export class GatewaySessions {
  /** One per placement process: sessions end when it does. */
  private readonly serverNonce = internalCrypto.nonce();

  constructor(
    private readonly secret: InternalSecret,
    private readonly logger: Logger,
  ) {}

  challengeService(): ServiceBinding {
    const challenge = unaryHandler(this.logger, async (request: ChallengeRequest): Promise<ChallengeResponse> => {
      if (!internalCrypto.isNonce(request.clientNonce)) throw invalidArgument("client_nonce must be 32 hex digits");
      return { serverNonce: this.serverNonce, proof: this.secret.challengeProof(request.clientNonce, this.serverNonce) };
    });
    return { definition: InternalAuthService, implementation: { challenge } };
  }

  /** The binding with every method refusing callers without a session token of this process. */
  guard(binding: ServiceBinding): ServiceBinding {
    const implementation: Record<string, UntypedHandleCall> = {};
    for (const [method, attributes] of Object.entries(binding.definition)) {
      const handler = binding.implementation[method] as (call: unknown, callback?: unknown) => void;
      const action = attributes.path.replace(/^\/modelswap\.v1\./, "");
      const refusal = (call: ServerUnaryCall<unknown, unknown>): Partial<ServiceError> | undefined => {
        const problem = this.problem(singleValue(call.metadata, INTERNAL_METADATA.session));
        if (!problem) return undefined;
        this.logger.warn("internal_call_refused", { action, problem, peer: call.getPeer() });
        return toGrpcStatus(
          unauthenticated(`${action} is internal to modelswap (${problem}): only its gateway, holding the internal secret, may call placement; clients call the gateway`),
          () => undefined,
        );
      };
      implementation[method] =
        attributes.responseStream
          ? (call: ServerWritableStream<unknown, unknown>) => {
              const refused = refusal(call as unknown as ServerUnaryCall<unknown, unknown>);
              if (refused) call.emit("error", refused);
              else handler(call);
            }
          : (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
              const refused = refusal(call);
              if (refused) callback(refused as ServiceError);
              else handler(call, callback);
            };
    }
    return { definition: binding.definition, implementation };
  }

  private problem(header: string | undefined): string | undefined {
    if (header === undefined) return "no session";
    const [clientNonce, token] = header.split(".");
    if (!internalCrypto.isNonce(clientNonce)) return "a malformed session";
    return internalCrypto.sameMac(token, this.secret.sessionToken(this.serverNonce, clientNonce)) ? undefined : "a session this placement process did not make";
  }
}
