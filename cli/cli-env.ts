/** The CLI's environment: the one place it reads variables. */
export const cliEnv = {
  /** Gateway address for client commands (generate, models, ps, watch, load, unload, pin). */
  gatewayAddress: process.env.MODELSWAP_ADDRESS ?? "127.0.0.1:50051",
  quietLogs: process.env.MODELSWAP_LOG === "silent",
};
