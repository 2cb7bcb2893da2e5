import { status as GrpcStatus } from "@grpc/grpc-js";
import { asModelswapError } from "../../common/errors.js";

/** OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface HttpError {
  status: number;
  headers: Record<string, string>;
  body: OpenAiErrorBody;
}

/** The one mapping from a gRPC status to the HTTP status the OpenAI-compatible API answers with. */
const HTTP_STATUS: Readonly<Record<number, number>> = {
  [GrpcStatus.INVALID_ARGUMENT]: 400,
  [GrpcStatus.OUT_OF_RANGE]: 400,
  [GrpcStatus.FAILED_PRECONDITION]: 400,
  [GrpcStatus.UNAUTHENTICATED]: 401,
  [GrpcStatus.PERMISSION_DENIED]: 403,
  [GrpcStatus.NOT_FOUND]: 404,
  [GrpcStatus.ALREADY_EXISTS]: 409,
  [GrpcStatus.ABORTED]: 409,
  [GrpcStatus.RESOURCE_EXHAUSTED]: 429,
  [GrpcStatus.CANCELLED]: 499,
  [GrpcStatus.UNIMPLEMENTED]: 501,
  [GrpcStatus.UNAVAILABLE]: 503,
  [GrpcStatus.DEADLINE_EXCEEDED]: 504,
};

const ERROR_TYPE: Readonly<Record<number, string>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  409: "conflict_error",
  413: "invalid_request_error",
  415: "invalid_request_error",
  429: "rate_limit_error",
  499: "cancelled",
  503: "service_unavailable",
  504: "timeout",
};

/** The HTTP status for a gRPC status code (500 for codes that mean a bug: UNKNOWN, INTERNAL, DATA_LOSS). */
export function httpStatusOf(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/**
 * What the HTTP API answers for an error thrown by the router, placement or the door
 * checks: the status from the gRPC code, OpenAI's body, and Retry-After for 429 and 503.
 * Anything that is not a ModelswapError is reported to `onUnexpected` and becomes a 500.
 */
export function httpErrorOf(error: unknown, onUnexpected: (error: unknown) => void): HttpError {
  const known = asModelswapError(error);
  if (!known) {
    onUnexpected(error);
    return httpError(500, "internal error; the gateway logged it", "internal");
  }
  const status = httpStatusOf(known.code);
  const result = httpError(status, known.message, (GrpcStatus[known.code] ?? "unknown").toLowerCase());
  if (status === 429 || status === 503) result.headers["retry-after"] = String(Math.max(1, Math.ceil(known.retryAfterSeconds ?? 1)));
  return result;
}

/** An error from the HTTP layer itself (bad JSON, body too large, wrong content type, no route). */
export function httpError(status: number, message: string, code: string | null = null): HttpError {
  return { status, headers: {}, body: { error: { message, type: ERROR_TYPE[status] ?? (status >= 500 ? "server_error" : "invalid_request_error"), param: null, code } } };
}
