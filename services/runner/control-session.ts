import { credentials, type ClientDuplexStream } from "@grpc/grpc-js";
import type { Logger } from "../../common/logger.js";
import { RunnerControlClient, type RunnerCommand, type RunnerEvent } from "../../gen/modelswap/v1/runner.js";

export interface ControlSessionOptions {
  placementAddress: string;
  /** Sent as the first event of every (re)connection. */
  hello: () => RunnerEvent;
  onCommand: (command: RunnerCommand) => void;
  /** Called when placement stays unreachable for longer than the grace period. */
  onGiveUp: () => void;
  reconnectGraceMs: number;
  logger: Logger;
}

/**
 * The runner's side of the control stream. It dials placement, says hello, and dials
 * again when the stream breaks (placement restarted), until the grace period runs out.
 */
export class ControlSession {
  private readonly client: RunnerControlClient;
  private stream: ClientDuplexStream<RunnerEvent, RunnerCommand> | undefined;
  private disconnectedSince: number | undefined;
  private closed = false;

  constructor(private readonly options: ControlSessionOptions) {
    this.client = new RunnerControlClient(options.placementAddress, credentials.createInsecure());
  }

  start(): void {
    this.connect();
  }

  send(event: RunnerEvent): void {
    this.stream?.write(event);
  }

  close(): void {
    this.closed = true;
    this.stream?.end();
    this.client.close();
  }

  private connect(): void {
    if (this.closed) return;
    const stream = this.client.connect();
    this.stream = stream;
    let ended = false;
    stream.on("metadata", () => {
      this.disconnectedSince = undefined; // placement answered: the grace period starts afresh next time
    });
    stream.on("data", (command: RunnerCommand) => {
      this.disconnectedSince = undefined;
      this.options.onCommand(command);
    });
    const onEnd = (reason: string) => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      if (this.closed) return;
      this.disconnectedSince ??= Date.now();
      if (Date.now() - this.disconnectedSince > this.options.reconnectGraceMs) {
        this.options.logger.warn("placement_unreachable", { reason });
        this.options.onGiveUp();
        return;
      }
      setTimeout(() => this.connect(), 200).unref();
    };
    stream.on("error", (error: Error) => onEnd(error.message));
    stream.on("end", () => onEnd("stream ended"));
    stream.write(this.options.hello());
  }
}
