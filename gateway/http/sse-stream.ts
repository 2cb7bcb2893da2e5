import type { ServerResponse } from "node:http";

/**
 * A server-sent-events response (`data: JSON` events, `data: [DONE]` at the end, as
 * OpenAI streams). Nothing is sent until open(), so errors found before the first
 * event still get their own HTTP status. Writes respect backpressure: a write that
 * the socket cannot take yet returns a promise that resolves when it drains or closes.
 */
export class SseStream {
  private started = false;

  constructor(private readonly response: ServerResponse) {}

  get opened(): boolean {
    return this.started;
  }

  open(): void {
    if (this.started) return;
    this.started = true;
    this.response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
  }

  data(value: unknown): void | Promise<void> {
    return this.write(`data: ${JSON.stringify(value)}\n\n`);
  }

  /** An SSE comment (ignored by clients): progress while the model is queued or loading. */
  comment(text: string): void | Promise<void> {
    return this.write(`: ${text}\n\n`);
  }

  end(): void {
    if (this.response.destroyed) return;
    this.response.end("data: [DONE]\n\n");
  }

  private write(text: string): void | Promise<void> {
    const response = this.response;
    if (response.destroyed || response.writableEnded) return;
    if (response.write(text)) return;
    return new Promise<void>((resolve) => {
      const done = () => {
        response.off("drain", done);
        response.off("close", done);
        resolve();
      };
      response.once("drain", done);
      response.once("close", done);
    });
  }
}
