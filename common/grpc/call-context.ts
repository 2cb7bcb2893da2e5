import type { Deadline } from "@grpc/grpc-js";

/** The part of a server call (unary, streaming or duplex) this needs. */
interface WatchedCall {
  readonly cancelled: boolean;
  getDeadline(): Deadline;
  once(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
}

/** What every handler gets about its call: one AbortSignal and the caller's deadline. */
export interface CallContext {
  /** Aborts when the caller cancels (or went away before the handler ran) or its deadline passes. */
  signal: AbortSignal;
  /** The caller's deadline, if it set one. */
  deadline: Date | undefined;
  /** Stops watching the call (the handler is done). */
  dispose(): void;
}

/** The caller's deadline as a Date (grpc-js gives a Date or a number of ms since the epoch; Infinity = none). */
export function deadlineOf(call: { getDeadline(): Deadline }): Date | undefined {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return deadline;
  return Number.isFinite(deadline) ? new Date(deadline) : undefined;
}

/**
 * Folds cancellation and the deadline of a server call into one AbortSignal. A call already
 * cancelled when the handler starts gets an aborted signal at once (its "cancelled" event
 * has been emitted and will not come again).
 */
export function callContext(call: WatchedCall): CallContext {
  const controller = new AbortController();
  const deadline = deadlineOf(call);
  const onCancelled = () => controller.abort();
  let timer: NodeJS.Timeout | undefined;
  if (call.cancelled) controller.abort();
  else {
    call.once("cancelled", onCancelled);
    if (deadline) {
      timer = setTimeout(() => controller.abort(), Math.max(0, deadline.getTime() - Date.now()));
      timer.unref();
    }
  }
  return {
    signal: controller.signal,
    deadline,
    dispose: () => {
      clearTimeout(timer);
      call.removeListener("cancelled", onCancelled);
    },
  };
}
