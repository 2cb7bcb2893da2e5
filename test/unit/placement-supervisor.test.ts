// serve's placement supervisor against stand-in placement processes (a node script that
// prints placement's ready line): restart after an unasked exit, and a stop that cannot hang.
import assert from "node:assert/strict";
import { PlacementSupervisor, READY_PREFIX } from "../../cli/placement-supervisor.js";
import type { Logger, LogFields } from "../../common/logger.js";

/** A placement that serves at once; `ignoresSigterm` makes it ignore SIGTERM, `exitAfterMs` exit by itself. */
function standIn(options: { ignoresSigterm?: boolean; exitAfterMs?: number; exitsEveryStart?: boolean }): string[] {
  const script = [
    options.ignoresSigterm ? "process.on('SIGTERM', () => console.log('ignoring SIGTERM'));" : "",
    `console.log(${JSON.stringify(READY_PREFIX)} + (process.argv.includes('--listen') ? 'again' : '127.0.0.1:50052'));`,
    // only the first start exits by itself: a restart is given --listen
    options.exitAfterMs !== undefined ? `if (${options.exitsEveryStart ? "true" : "!process.argv.includes('--listen')"}) setTimeout(() => process.exit(3), ${options.exitAfterMs});` : "",
    "setInterval(() => {}, 1000);",
  ].join("\n");
  return ["-e", script, "--"];
}

describe("serve's placement supervisor (stand-in placement processes)", function () {
  this.timeout(20_000);
  let logged: [string, LogFields | undefined][] = [];
  const logger: Logger = {
    info: (event, fields) => logged.push([event, fields]),
    warn: (event, fields) => logged.push([event, fields]),
    error: (event, fields) => logged.push([event, fields]),
    child: () => logger,
  };
  beforeEach(() => (logged = []));

  it("stops a placement that ignores SIGTERM with SIGKILL after the stop timeout, instead of hanging serve", async () => {
    const pids: number[] = [];
    const output: string[] = [];
    const supervisor = new PlacementSupervisor({
      args: standIn({ ignoresSigterm: true }),
      env: process.env,
      logger,
      onOutput: (line) => output.push(line),
      onReady: (_address, pid) => pids.push(pid),
      stopTimeoutMs: 300,
    });
    assert.equal(await supervisor.start(), "127.0.0.1:50052");
    // act
    await supervisor.stop();
    // assert: it was asked first, then ended
    assert.deepEqual(output, ["ignoring SIGTERM"]);
    assert.throws(() => process.kill(pids[0]!, 0), /ESRCH/, "the stand-in is gone");
  });

  it("starts placement again on the address the first one bound when it exits unasked", async () => {
    const ready: [string, number][] = [];
    let restarted!: () => void;
    const again = new Promise<void>((resolve) => (restarted = resolve));
    const supervisor = new PlacementSupervisor({
      args: standIn({ exitAfterMs: 50 }),
      env: process.env,
      logger,
      onOutput: () => undefined,
      onReady: (address, _pid, restarts) => {
        ready.push([address, restarts]);
        if (restarts === 1) restarted();
      },
    });
    await supervisor.start();
    await again;
    await supervisor.stop();
    assert.deepEqual(ready, [
      ["127.0.0.1:50052", 0],
      ["127.0.0.1:50052", 1],
    ]);
    assert.deepEqual(logged, [["placement_exited", { code: 3, signal: null, restartInMs: 250 }]]);
  });

  it("waits longer after each failure in a row: 250 ms, then 500, then 1 s (up to 8 s)", async () => {
    let third!: () => void;
    const restartedThrice = new Promise<void>((resolve) => (third = resolve));
    const supervisor = new PlacementSupervisor({
      args: standIn({ exitAfterMs: 20, exitsEveryStart: true }),
      env: process.env,
      logger,
      onOutput: () => undefined,
      onReady: (_address, _pid, restarts) => restarts === 3 && third(),
    });
    await supervisor.start();
    await restartedThrice;
    await supervisor.stop();
    assert.deepEqual(
      logged.filter(([event]) => event === "placement_exited").slice(0, 3).map(([, fields]) => fields?.restartInMs),
      [250, 500, 1000],
    );
  });
});
