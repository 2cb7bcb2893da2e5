/**
 * Fault run: N requests through the gateway while runners are killed (SIGKILL) at
 * random moments. Counts what clients saw: succeeded, resumed (finished on another
 * runner after a failure), failed with a clear status, hung (no end within the
 * watchdog), and lost (finished with fewer tokens than asked, silently).
 *
 *   npx tsc -p . && node dist/bench/fault-run.js [--requests 100] [--concurrency 8] [--kill-every-ms 400]
 *       [--seed 1] [--resumable-share 0.5] [--watchdog-s 60]
 *
 * Goal (issue "Router"): 0 hung, 0 lost. Bounded: the run stops after all requests end
 * or the watchdog fires; it kills only runner processes its own placement started.
 */
import type { ServiceError } from "@grpc/grpc-js";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseConfig } from "../common/config/parse-config.js";
import type { StatusResponse } from "../gen/modelswap/v1/admin.js";
import type { GenerateResponse } from "../gen/modelswap/v1/inference.js";
import { seededRandom } from "./simulator/random.js";
import { startLocalStack } from "./lib/local-stack.js";
import { callUnary } from "../common/grpc/call-unary.js";

const { values: flags } = parseArgs({
  options: {
    requests: { type: "string", default: "100" },
    concurrency: { type: "string", default: "8" },
    "kill-every-ms": { type: "string", default: "400" },
    seed: { type: "string", default: "1" },
    "resumable-share": { type: "string", default: "0.5" },
    "watchdog-s": { type: "string", default: "60" },
  },
});
const REQUESTS = Number(flags.requests);
const CONCURRENCY = Number(flags.concurrency);
const KILL_EVERY_MS = Number(flags["kill-every-ms"]);
const RESUMABLE_SHARE = Number(flags["resumable-share"]);
const WATCHDOG_MS = Number(flags["watchdog-s"]) * 1000;

/** The same kills and requests for the same seed. */
const random = seededRandom(Number(flags.seed));

type Outcome = "succeeded" | "resumed" | "failed" | "hung" | "lost";

const projectRoot = fileURLToPath(new URL("../../", import.meta.url));
const model = path.resolve(projectRoot, "models/stories260K.gguf");
if (!existsSync(model)) throw new Error(`needs ${model}`);

const config = parseConfig(
  {
    listen: "127.0.0.1:0",
    budget: "2GiB",
    placement: { listen: "127.0.0.1:0", spare_runners: 1 },
    models: [{ name: "stories", path: model, context: 512, threads: 1, sequences: 4, preload: true, replicas: { min: 2, max: 2 } }],
  },
  projectRoot,
);
const stack = await startLocalStack(config);
const { inference, admin } = stack;
const status = () => callUnary<StatusResponse>((done) => admin.getStatus({}, done));

for (const deadline = Date.now() + 30_000; ; ) {
  if ((await status()).runners.filter((runner) => runner.state === "ready").length >= 2) break;
  if (Date.now() > deadline) throw new Error("two replicas did not become ready");
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const statuses = new Map<string, number>();
let kills = 0;
const killer = setInterval(async () => {
  const ready = (await status()).runners.filter((runner) => runner.state === "ready" && runner.pid > 0);
  if (ready.length === 0 || random() < 0.3) return; // sometimes let the system recover
  const victim = ready[Math.floor(random() * ready.length)]!;
  try {
    process.kill(victim.pid, "SIGKILL");
    kills++;
  } catch {
    // already gone
  }
}, KILL_EVERY_MS);

function one(index: number): Promise<Outcome> {
  const maxTokens = 40 + Math.floor(random() * 200);
  const resumable = random() < RESUMABLE_SHARE;
  return new Promise((resolve) => {
    const call = inference.generate({
      model: "stories",
      prompt: "Once upon a time",
      maxTokens,
      task: "",
      resumable,
      sampling: { temperature: 0.7, seed: index, ignoreEos: true, stop: [] },
    });
    let done: GenerateResponse["event"] | undefined;
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      resolve(outcome);
    };
    const watchdog = setTimeout(() => {
      call.cancel();
      settle("hung");
    }, WATCHDOG_MS);
    call.on("data", (message: GenerateResponse) => {
      if (message.event?.$case === "done") done = message.event;
    });
    call.on("error", (error: ServiceError) => {
      statuses.set(error.code + " " + error.details.replace(/\d+/g, "N"), (statuses.get(error.code + " " + error.details.replace(/\d+/g, "N")) ?? 0) + 1);
      settle("failed");
    });
    call.on("end", () => {
      if (done?.$case !== "done") return settle("lost");
      if (done.value.usage?.completionTokens !== maxTokens) return settle("lost");
      settle(done.value.failovers > 0 ? "resumed" : "succeeded");
    });
  });
}

const started = Date.now();
const counts: Record<Outcome, number> = { succeeded: 0, resumed: 0, failed: 0, hung: 0, lost: 0 };
let next = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < REQUESTS) {
      const index = next++;
      counts[await one(index)]++;
    }
  }),
);
clearInterval(killer);
const seconds = (Date.now() - started) / 1000;

console.log(`fault run: ${REQUESTS} requests, concurrency ${CONCURRENCY}, ${kills} runners killed (SIGKILL) in ${seconds.toFixed(1)} s, ${Math.round(RESUMABLE_SHARE * 100)}% resumable`);
console.log("outcome      requests");
for (const [outcome, count] of Object.entries(counts)) console.log(`${outcome.padEnd(12)} ${count}`);
console.log("failed with (status, message):");
for (const [text, count] of statuses) console.log(`  ${count} x ${text}`);
console.log(`goal: 0 hung, 0 lost -> ${counts.hung === 0 && counts.lost === 0 ? "met" : "NOT met"}`);

await stack.stop();
