/**
 * Runs a bench's main() bounded in time: on the time limit, a signal or an error it
 * stops what `cleanup` names (at most 5 s) and exits. A bench always stops by itself.
 */
export function runBounded(main: () => Promise<void>, options: { timeLimitS: number; cleanup: () => Promise<unknown>; onTimeout?: () => void }): void {
  const cleanup = () => Promise.race([options.cleanup(), new Promise((resolve) => setTimeout(resolve, 5000))]);
  const watchdog = setTimeout(() => {
    console.error(`time limit of ${options.timeLimitS} s reached; stopping`);
    options.onTimeout?.();
    void cleanup().then(() => process.exit(2));
  }, options.timeLimitS * 1000);
  watchdog.unref();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanup().then(() => process.exit(130)));
  main().then(
    () => process.exit(0),
    async (error: unknown) => {
      console.error(error);
      await cleanup();
      process.exit(1);
    },
  );
}
