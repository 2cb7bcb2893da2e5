import type { Metadata } from "@grpc/grpc-js";

/** gRPC metadata names of the internal planes (placement's port, runner ports). */
export const INTERNAL_METADATA = {
  /** Gateway -> placement, every call: `<client nonce>.<session token>`. */
  session: "x-modelswap-session",
  /** Runner -> placement on Connect, and placement's answer in its response headers. */
  runnerId: "x-modelswap-runner-id",
  nonce: "x-modelswap-nonce",
  proof: "x-modelswap-proof",
  /** Router -> runner on Generate: the lease token placement put in the Lease. */
  lease: "x-modelswap-lease",
} as const;

/** The one string value of a metadata key; undefined when absent, repeated or binary. */
export function singleValue(metadata: Metadata | undefined, key: string): string | undefined {
  const values = metadata?.get(key) ?? [];
  return values.length === 1 && typeof values[0] === "string" ? values[0] : undefined;
}
