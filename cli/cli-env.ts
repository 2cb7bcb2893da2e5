import { LOG_FORMATS, type LogFormat, type LogOptions } from "../common/logger.js";

/** Carries the log format from a CLI process to the processes it starts (placement, runners). */
const LOG_FORMAT_VARIABLE = "MODELSWAP_LOG_FORMAT";
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
  /** Hugging Face endpoint for `pull hf:…` (a mirror); node-llama-cpp's default otherwise. */
  huggingFaceEndpoint: process.env.HF_ENDPOINT || undefined,
  /** Progress bars (node-llama-cpp draws them on stdout) only where a person watches. */
  interactive: process.stdout.isTTY === true,
  /** etcd endpoints for `ps --cluster` (comma-separated; --etcd wins). */
  etcd: (process.env.MODELSWAP_ETCD || "http://127.0.0.1:2379").split(",").map((endpoint) => endpoint.trim()),
  /** The internal secret (serve hands it to its placement this way; --secret-file wins). */
  internalSecret,
};

/**
 * How this process logs: `--log-format`, else the format its parent passed down, else pretty
 * on a terminal and JSON otherwise. Exported to the environment so that the processes this one
 * starts (placement, runners: stderr inherited) write the same format.
 */
export function logOptions(flag: LogFormat | undefined): LogOptions {
  const inherited = process.env[LOG_FORMAT_VARIABLE] as LogFormat | undefined;
  const format = flag ?? (inherited && LOG_FORMATS.includes(inherited) ? inherited : process.stderr.isTTY ? "pretty" : "json");
  process.env[LOG_FORMAT_VARIABLE] = format;
  return { format, quiet: cliEnv.quietLogs, colors: format === "pretty" && process.stderr.isTTY === true && !process.env.NO_COLOR };
}
