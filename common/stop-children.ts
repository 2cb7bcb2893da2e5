import type { ChildProcess } from "node:child_process";

/** Asks each child process to end (SIGTERM, then SIGKILL after `timeoutMs`) and waits until all have exited. */
export async function stopChildren(children: Iterable<ChildProcess>, timeoutMs: number): Promise<void> {
  const exits = [...children].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), timeoutMs).unref();
      }),
  );
  await Promise.all(exits);
}
