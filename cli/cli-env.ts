/** The CLI's environment: the one place it reads variables. */
export const cliEnv = {
  /** Gateway address for client commands (generate, models, ps, watch, load, unload, pin). */
  gatewayAddress: process.env.MODELSWAP_ADDRESS ?? "127.0.0.1:50051",
  /** API key for client commands (--api-key wins). */
  apiKey: process.env.MODELSWAP_API_KEY || undefined,
  /** PEM CA certificate that signed a TLS gateway's certificate (--tls-ca wins). */
  tlsCa: process.env.MODELSWAP_TLS_CA || undefined,
  quietLogs: process.env.MODELSWAP_LOG === "silent",
  /** etcd endpoints for `ps --cluster` (comma-separated; --etcd wins). */
  etcd: (process.env.MODELSWAP_ETCD || "http://127.0.0.1:2379").split(",").map((endpoint) => endpoint.trim()),
};
