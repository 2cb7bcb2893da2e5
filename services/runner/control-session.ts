import { credentials, Metadata, type ClientDuplexStream } from "@grpc/grpc-js";
import { internalCrypto } from "../../common/internal-auth/internal-crypto.js";
import { INTERNAL_METADATA, singleValue } from "../../common/internal-auth/internal-metadata.js";
import { INTERNAL_CHANNEL_OPTIONS } from "../../common/internal-auth/internal-channel.js";
import type { RunnerKey } from "../../common/internal-auth/runner-key.js";
import type { Logger } from "../../common/logger.js";
import { RunnerControlClient, type RunnerCommand, type RunnerEvent } from "../../gen/modelswap/v1/runner.js";

export interface ControlSessionOptions {
  runnerId: string;
  key: RunnerKey;
  placementAddress: string;
  /** Sent as the first event of every (re)connection, with the runner's proof. */
  hello: (authProof: string) => RunnerEvent;
  onCommand: (command: RunnerCommand) => void;
  /** Called when placement stays unreachable (or unproven) for longer than the grace period. */
  onGiveUp: () => void;
  reconnectGraceMs: number;
  logger: Logger;
}

/**
 * The runner's side of the control stream. It dials placement with its id and a fresh
 * nonce, and follows placement only once placement's response headers prove it holds this
 * runner's key (runner-key.ts): then it says hello with its own proof, sends reports and
 * obeys commands. A process that took placement's address after placement died gets no
 * hello, no report and no obedience; the runner dials again until the grace period runs out.
 */
export class ControlSession {
  private readonly client: RunnerControlClient;
  /** The stream of a placement that proved itself; reports go nowhere else. */
  private trusted: ClientDuplexStream<RunnerEvent, RunnerCommand> | undefined;
  private disconnectedSince: number | undefined;
  private closed = false;

  constructor(private readonly options: ControlSessionOptions) {
    this.client = new RunnerControlClient(options.placementAddress, credentials.createInsecure(), INTERNAL_CHANNEL_OPTIONS);
  }

  start(): void {
    this.connect();
  }

  send(event: RunnerEvent): void {
    this.trusted?.write(event);
  }

  close(): void {
    this.closed = true;
    this.trusted?.end();
    this.client.close();
  }

  private connect(): void {
    if (this.closed) return;
    const { key, logger } = this.options;
    const runnerNonce = internalCrypto.nonce();
    const metadata = new Metadata();
    metadata.set(INTERNAL_METADATA.runnerId, this.options.runnerId);
    metadata.set(INTERNAL_METADATA.nonce, runnerNonce);
    const stream = this.client.connect(metadata);
    let proven = false;
    let ended = false;
    stream.on("metadata", (headers: Metadata) => {
      const placementNonce = singleValue(headers, INTERNAL_METADATA.nonce);
      if (!internalCrypto.isNonce(placementNonce) || !internalCrypto.sameMac(singleValue(headers, INTERNAL_METADATA.proof), key.placementProof(runnerNonce, placementNonce))) {
        logger.warn("placement_not_proven", { placement: this.options.placementAddress });
        stream.cancel();
        return;
      }
      proven = true;
      this.trusted = stream;
      this.disconnectedSince = undefined; // placement answered: the grace period starts afresh next time
      stream.write(this.options.hello(key.runnerProof(placementNonce, runnerNonce)));
    });
    stream.on("data", (command: RunnerCommand) => {
      if (proven) this.options.onCommand(command);
    });
    const onEnd = (reason: string) => {
      if (ended) return;
      ended = true;
      if (this.trusted === stream) this.trusted = undefined;
      if (this.closed) return;
      this.disconnectedSince ??= Date.now();
      if (Date.now() - this.disconnectedSince > this.options.reconnectGraceMs) {
        logger.warn("placement_unreachable", { reason });
        this.options.onGiveUp();
        return;
      }
      setTimeout(() => this.connect(), 200).unref();
    };
    stream.on("error", (error: Error) => onEnd(error.message));
    stream.on("end", () => onEnd("stream ended"));
  }
}
