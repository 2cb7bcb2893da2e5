/**
 * Runner process entry. Ctrl-C in the terminal of `serve` or `placement` sends SIGINT to every
 * process of its group: placement then ends its runners in order, and a runner that died of
 * the signal would be reported as crashed. So SIGINT is ignored from the first moment, before
 * the imports (node-llama-cpp takes a while), and the process itself is loaded after it.
 * SIGTERM ends a runner; one whose placement is gone ends after its reconnect grace.
 */
process.on("SIGINT", () => undefined);
await import("./runner-process.js");
