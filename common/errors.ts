import { status as GrpcStatus, Metadata, type ServiceError } from "@grpc/grpc-js";

/**
 * The one error type that handlers throw. Its message tells the user what to do;
 * its code is the gRPC status the client sees.
 */
export class ModelswapError extends Error {
  constructor(
    readonly code: GrpcStatus,
    message: string,
    /** Seconds after which a retry may succeed (RESOURCE_EXHAUSTED, UNAVAILABLE). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "ModelswapError";
  }
}

export const invalidArgument = (message: string) => new ModelswapError(GrpcStatus.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new ModelswapError(GrpcStatus.NOT_FOUND, message);
export const failedPrecondition = (message: string) => new ModelswapError(GrpcStatus.FAILED_PRECONDITION, message);
export const unavailable = (message: string, retryAfterSeconds?: number) =>
  new ModelswapError(GrpcStatus.UNAVAILABLE, message, retryAfterSeconds);
export const resourceExhausted = (message: string, retryAfterSeconds?: number) =>
  new ModelswapError(GrpcStatus.RESOURCE_EXHAUSTED, message, retryAfterSeconds);
export const deadlineExceeded = (message: string) => new ModelswapError(GrpcStatus.DEADLINE_EXCEEDED, message);
export const cancelled = (message: string) => new ModelswapError(GrpcStatus.CANCELLED, message);
export const unauthenticated = (message: string) => new ModelswapError(GrpcStatus.UNAUTHENTICATED, message);
export const permissionDenied = (message: string) => new ModelswapError(GrpcStatus.PERMISSION_DENIED, message);

/** True for errors that came over the wire from a gRPC peer. */
export function isServiceError(error: unknown): error is ServiceError {
  return typeof error === "object" && error !== null && "code" in error && "details" in error && "metadata" in error;
}

/** Rebuilds a ModelswapError from a peer's status so it can be passed on unchanged. */
export function fromServiceError(error: ServiceError): ModelswapError {
  const retry = error.metadata?.get("retry-after-seconds")[0];
  return new ModelswapError(error.code, error.details || error.message, retry === undefined ? undefined : Number(retry));
}

/** A ModelswapError, or a peer's status as one; undefined for anything unexpected. */
export function asModelswapError(error: unknown): ModelswapError | undefined {
  return error instanceof ModelswapError ? error : isServiceError(error) ? fromServiceError(error) : undefined;
}

/**
 * Maps anything thrown in a handler to what the client receives. ModelswapErrors
 * and peer statuses pass through; everything else becomes UNKNOWN and is reported
 * to `onUnexpected` (the one place unexpected errors are logged).
 */
export function toGrpcStatus(error: unknown, onUnexpected: (error: unknown) => void): Partial<ServiceError> {
  const known = asModelswapError(error);
  if (!known) {
    onUnexpected(error);
    const detail = error instanceof Error ? error.message : String(error);
    return { code: GrpcStatus.UNKNOWN, details: `internal error: ${detail}` };
  }
  return { code: known.code, details: known.message, metadata: statusMetadata(known) };
}

/** The trailing metadata a ModelswapError's status carries: `retry-after-seconds` when it has one. */
export function statusMetadata(error: ModelswapError): Metadata {
  const metadata = new Metadata();
  if (error.retryAfterSeconds !== undefined) metadata.set("retry-after-seconds", String(error.retryAfterSeconds));
  return metadata;
}
