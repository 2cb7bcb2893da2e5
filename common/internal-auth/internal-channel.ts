import type { ClientOptions } from "@grpc/grpc-js";

/** Internal clients (gateway -> placement, runner -> placement) reconnect within a second after placement restarts (grpc-js's default backoff grows to 120 s). */
export const INTERNAL_CHANNEL_OPTIONS: ClientOptions = { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 };
