import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * The few primitives of the internal planes: HMAC-SHA256 with a domain label first (so that
 * a proof made for one purpose is never valid for another), fresh nonces, and comparison in
 * constant time. Fields are joined with "|" and are hex or identifiers checked by callers,
 * so no two field lists give the same input.
 */
export const internalCrypto = {
  mac(key: Buffer, domain: string, ...fields: readonly string[]): string {
    return createHmac("sha256", key).update([domain, ...fields].join("|"), "utf8").digest("hex");
  },

  /** Constant time for equal lengths; false for a missing or malformed value. */
  sameMac(presented: string | undefined, expected: string): boolean {
    if (presented === undefined || presented.length !== expected.length || !/^[0-9a-f]+$/.test(presented)) return false;
    return timingSafeEqual(Buffer.from(presented, "hex"), Buffer.from(expected, "hex"));
  },

  /** 128 random bits as 32 hex digits. */
  nonce(): string {
    return randomBytes(16).toString("hex");
  },

  isNonce(value: string | undefined): value is string {
    return value !== undefined && /^[0-9a-f]{32}$/.test(value);
  },
};
