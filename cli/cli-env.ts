import { INTERNAL_SECRET_ENV } from "../common/internal-auth/internal-env.js";

/** Read once and removed, so that no process this one starts inherits it (runners get a derived key). */
const internalSecret = process.env[INTERNAL_SECRET_ENV] || undefined;
delete process.env[INTERNAL_SECRET_ENV];

/** The CLI's environment: the one place it reads variables. */
export const cliEnv = {
  /** Gateway address for client commands (generate, models, ps, watch, load, unload, pin). */
  gatewayAddress: process.env.MODELSWAP_ADDRESS ?? "127.0.0.1:50051",
  /** API key for client commands (--api-key wins). */
  apiKey: process.env.MODELSWAP_API_KEY || undefined,
  /** PEM CA certificate that signed a TLS gateway's certificate (--tls-ca wins). */
  tlsCa: process.env.MODELSWAP_TLS_CA || undefined,
  quietLogs: process.env.MODELSWAP_LOG === "silent",
  /** The internal secret (serve hands it to its placement this way; --secret-file wins). */
  internalSecret,
};
