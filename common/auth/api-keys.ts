import { createHash, timingSafeEqual } from "node:crypto";
import type { ApiKeyConfig, Scope } from "../config/config-types.js";
import { permissionDenied, unauthenticated } from "../errors.js";

/** Who made a call: the name of the key they presented. */
export interface Caller {
  name: string;
  scopes: readonly Scope[];
}

interface StoredKey {
  name: string;
  scopes: readonly Scope[];
  digest: Buffer;
}

const SUGGESTED_SCOPES: Record<Scope, string> = { infer: "infer", admin: "infer, admin", metrics: "metrics" };

const MISSING =
  'this gateway needs an API key: send the header "authorization: Bearer <key>" ' +
  "(CLI: --api-key or MODELSWAP_API_KEY; openai SDK: apiKey); ask the operator for a key";

/**
 * The configured API keys. Presented keys are compared as SHA-256 digests with
 * crypto.timingSafeEqual against every stored key (no early exit), so neither the
 * comparison nor the loop tells how much of a key was right. Keys are never logged
 * and never appear in an error.
 */
export class ApiKeys {
  private readonly keys: StoredKey[];

  constructor(keys: readonly ApiKeyConfig[]) {
    this.keys = keys.map((key) => ({ name: key.name, scopes: key.scopes, digest: digest(key.key) }));
  }

  /**
   * The caller behind an `authorization` value (HTTP header or gRPC metadata), if it may
   * use `scope`; `action` names what was asked (e.g. "Admin/LoadModel") in the refusal.
   * Throws UNAUTHENTICATED (no, malformed or unknown key) or PERMISSION_DENIED (scope).
   */
  authorize(authorization: string | undefined, scope: Scope, action: string): Caller {
    if (authorization === undefined || authorization === "") throw unauthenticated(MISSING);
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!match) throw unauthenticated('the authorization header must be "Bearer <key>"; ' + MISSING.slice(MISSING.indexOf("(")));
    const presented = digest(match[1]!);
    let found: StoredKey | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(presented, key.digest) && found === undefined) found = key;
    }
    if (!found) throw unauthenticated("the API key is not valid; check it, or ask the operator for a key listed under auth.keys");
    // An admin may read /metrics too.
    if (!found.scopes.includes(scope) && !(scope === "metrics" && found.scopes.includes("admin"))) {
      throw permissionDenied(
        `the key "${found.name}" may not call ${action}: that needs the "${scope}" scope and the key has ${found.scopes.join(", ")}; ` +
          `ask the operator for a key with scopes [${SUGGESTED_SCOPES[scope]}]`,
      );
    }
    return { name: found.name, scopes: found.scopes };
  }
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}
