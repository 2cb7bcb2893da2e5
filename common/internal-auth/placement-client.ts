import {
  connectivityState,
  credentials,
  InterceptingCall,
  Metadata,
  status as GrpcStatus,
  type ClientOptions,
  type Deadline,
  type Interceptor,
  type InterceptingListener,
  type StatusObject,
} from "@grpc/grpc-js";
import { statusMetadata, unavailable, type ModelswapError } from "../errors.js";
import { InternalAuthClient } from "../../gen/modelswap/v1/internal_auth.js";
import { PlacementClient, type AcquireEvent } from "../../gen/modelswap/v1/placement.js";
import { INTERNAL_CHANNEL_OPTIONS } from "./internal-channel.js";
import { internalCrypto } from "./internal-crypto.js";
import { INTERNAL_METADATA } from "./internal-metadata.js";
import type { InternalSecret } from "./internal-secret.js";

/** Longest a call waits for placement to be reachable and prove itself (its own deadline may be shorter). */
const HANDSHAKE_TIMEOUT_MS = 5000;

/**
 * A PlacementClient that proves, and asks placement to prove, knowledge of the internal
 * secret. Before its first call on a connection it calls InternalAuth/Challenge (same
 * channel) and checks placement's proof over a fresh nonce; only then does it sign calls
 * with a session token bound to that placement process, so a process squatting on
 * placement's port after a crash gets no credential it could use anywhere. Every granted
 * lease is checked against the secret before the router may send a prompt to the runner
 * address it names. The session is made again whenever the connection was lost (placement
 * restarted) and when placement refuses it.
 */
export function authenticatedPlacementClient(address: string, secret: InternalSecret, options: ClientOptions = {}): PlacementClient {
  let session: { header: Promise<string>; settled: boolean } | undefined;
  // Assigned right below; calls (and so the interceptor) start only after this function returns.
  let client!: PlacementClient;
  let challenger!: InternalAuthClient;

  const handshake = (deadline: Date) =>
    new Promise<string>((resolve, reject) => {
      const clientNonce = internalCrypto.nonce();
      challenger.challenge({ clientNonce }, new Metadata({ waitForReady: true }), { deadline }, (error, response) => {
        if (error) return reject(unavailable(`placement at ${address} is not reachable (${error.details || error.message}); retry in a few seconds`, 1));
        const proven = internalCrypto.isNonce(response.serverNonce) && internalCrypto.sameMac(response.proof, secret.challengeProof(clientNonce, response.serverNonce));
        if (!proven) {
          return reject(
            unavailable(`the process at ${address} did not prove it holds this installation's internal secret, so it is not our placement; check the placement address and --secret-file`, 5),
          );
        }
        resolve(`${clientNonce}.${secret.sessionToken(response.serverNonce, clientNonce)}`);
      });
    });

  const sessionHeader = (deadline: Date): Promise<string> => {
    const connected = client.getChannel().getConnectivityState(false) === connectivityState.READY;
    if (!session || (session.settled && !connected)) {
      const attempt = { header: handshake(deadline), settled: false };
      attempt.header.then(
        () => (attempt.settled = true),
        () => {
          if (session === attempt) session = undefined;
        },
      );
      session = attempt;
    }
    return session.header;
  };

  const interceptor: Interceptor = (callOptions, nextCall) => {
    const checksLeases = callOptions.method_definition.path.endsWith("/Acquire");
    let started = false;
    let ended = false;
    let outer: InterceptingListener | undefined;
    const end = (status: StatusObject) => {
      if (ended) return;
      ended = true;
      outer?.onReceiveStatus(status);
    };
    const call: InterceptingCall = new InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        outer = listener;
        sessionHeader(earliest(callOptions.deadline, Date.now() + HANDSHAKE_TIMEOUT_MS)).then(
          (header) => {
            if (ended) return; // cancelled while the session was being made
            started = true;
            metadata.set(INTERNAL_METADATA.session, header);
            next(metadata, {
              onReceiveMessage(message, passOn) {
                const lease = checksLeases ? (message as AcquireEvent).event : undefined;
                const problem = lease?.$case === "granted" ? secret.leaseProblem(lease.value, Date.now()) : undefined;
                if (problem) {
                  // The caller hears this status; the message goes no further and the call is torn down.
                  end({ code: GrpcStatus.UNAVAILABLE, details: `placement at ${address} granted a lease with ${problem}; it is not our placement or runs with another secret; retry`, metadata: new Metadata() });
                  call.cancelWithStatus(GrpcStatus.CANCELLED, "lease refused");
                  return;
                }
                if (!ended) passOn(message);
              },
              onReceiveStatus(status, passOn) {
                if (status.code === GrpcStatus.UNAUTHENTICATED) session = undefined; // placement restarted: a new session next time
                if (ended) return;
                ended = true;
                passOn(status);
              },
            });
          },
          (error: ModelswapError) => end({ code: error.code, details: error.message, metadata: statusMetadata(error) }),
        );
      },
      sendMessage(message, next) {
        if (!ended) next(message);
      },
      halfClose(next) {
        if (!ended) next();
      },
      cancel(next) {
        if (started) next();
        else end({ code: GrpcStatus.CANCELLED, details: "Cancelled on client", metadata: new Metadata() });
      },
    });
    return call;
  };

  client = new PlacementClient(address, credentials.createInsecure(), {
    ...INTERNAL_CHANNEL_OPTIONS,
    ...options,
    interceptors: [...(options.interceptors ?? []), interceptor],
  });
  challenger = new InternalAuthClient(address, credentials.createInsecure(), { channelOverride: client.getChannel() });
  return client;
}

function earliest(deadline: Deadline | undefined, atMs: number): Date {
  const ms = deadline === undefined ? Infinity : deadline instanceof Date ? deadline.getTime() : deadline;
  return new Date(Math.min(ms, atMs));
}
