import type { ServerWritableStream } from "@grpc/grpc-js";

/**
 * Writes to a server stream respecting backpressure: resolves at once while the
 * transport has room, else when it drains (or the call ends).
 */
export function writeWithBackpressure<T>(call: ServerWritableStream<unknown, T>, message: T): void | Promise<void> {
  if (call.cancelled || call.destroyed) return;
  if (call.write(message)) return;
  if (call.cancelled || call.destroyed) return;
  return new Promise<void>((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("close", done);
      call.off("cancelled", done);
      resolve();
    };
    call.once("drain", done);
    call.once("close", done);
    call.once("cancelled", done);
  });
}
