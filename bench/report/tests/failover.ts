import type { RunContext } from "../run-context.js";
import type { Session } from "../session.js";

/**
 * Test 9 (phase C, failover): two models stream at once; once both have sent tokens, the runner
 * process of one of them is killed (SIGKILL). Which streams fail: only the victim's (its own
 * process), or the other model's too (they shared one)? Then how long until the victim serves again.
 */

export interface FailoverResult {
  isolation: "shared" | "process";
  victim: string;
  bystander: string;
  /** Both models lived in the killed process. */
  sameProcess: boolean;
  /** The kill happened while both streams were running. */
  killedMidStream: boolean;
  victimFailed: boolean;
  bystanderFailed: boolean;
  victimError: string;
  bystanderError: string;
  /** A new request for the victim right after the kill: time to its first token (a runner start and a load). */
  recoveryTtftMs: number;
  recoveryOk: boolean;
}

export async function failover(
  session: Session,
  isolation: FailoverResult["isolation"],
  victim: string,
  bystander: string,
  context: RunContext,
  maxTokens: number,
): Promise<FailoverResult> {
  context.step(`test 9: a runner is killed mid-stream (${isolation === "shared" ? "models share a runner" : "one runner per model"})`);
  // only these two resident, so that neither load evicts the other
  for (const model of await session.residentModels()) if (model !== victim && model !== bystander) await session.unload(model);
  // Loading one may still push the other out (a budget counts measured bytes, and a runner that
  // kept memory is recycled when a load needs it): load again until both are resident, a few times.
  let status = await session.status();
  for (let attempt = 0; attempt < 4; attempt++) {
    await session.load(victim);
    await session.load(bystander);
    await session.settled();
    status = await session.status();
    const hosts = (model: string) => status.runners.some((runner) => runner.models.some((hosted) => hosted.name === model && hosted.state === "ready"));
    if (hosts(victim) && hosts(bystander)) break;
  }
  const victimRunner = status.runners.find((runner) => runner.models.some((hosted) => hosted.name === victim));
  if (!victimRunner) {
    // The budget did not hold both at once (a load measured more than planned): said, not failed.
    const reason = `not measured: ${victim} and ${bystander} were not resident together after 4 tries`;
    return { isolation, victim, bystander, sameProcess: false, killedMidStream: false, victimFailed: false, bystanderFailed: false, victimError: reason, bystanderError: reason, recoveryTtftMs: Number.NaN, recoveryOk: false };
  }
  const sameProcess = victimRunner.models.some((hosted) => hosted.name === bystander);

  const seen = { victim: 0, bystander: 0 };
  let killedMidStream = false;
  let ended = false;
  const maybeKill = () => {
    if (killedMidStream || ended || seen.victim < 2 || seen.bystander < 2) return;
    killedMidStream = true;
    process.kill(victimRunner.pid, "SIGKILL");
  };
  const [victimResult, bystanderResult] = await Promise.all([
    session.generate({ model: victim, maxTokens, onToken: (tokens) => ((seen.victim = tokens), maybeKill()) }),
    session.generate({ model: bystander, maxTokens, onToken: (tokens) => ((seen.bystander = tokens), maybeKill()) }),
  ]);
  ended = true;
  const recovery = await session.generate({ model: victim, maxTokens: 2 });
  return {
    isolation,
    victim,
    bystander,
    sameProcess,
    killedMidStream,
    victimFailed: !victimResult.ok,
    bystanderFailed: !bystanderResult.ok,
    victimError: victimResult.error,
    bystanderError: bystanderResult.error,
    recoveryTtftMs: recovery.ttftMs,
    recoveryOk: recovery.ok,
  };
}
