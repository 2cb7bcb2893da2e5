import { createLogger } from "../../common/logger.js";
import { HealthStatus } from "../../common/grpc/health.js";
import { reflectionBindings } from "../../common/grpc/reflection.js";
import { startServer } from "../../common/grpc/start-server.js";
import { exitAfterFlush, startTelemetry } from "../../common/telemetry/telemetry.js";
import { ControlSession } from "./control-session.js";
import { LlamaEngine } from "./llama-engine.js";
import { Runner } from "./runner.js";
import { runnerDataService } from "./runner-data-service.js";
import { readRunnerEnv } from "./runner-env.js";

/** The runner process (entered through main.ts): initialise the backend, serve tokens, obey placement. */
const env = readRunnerEnv();
const logger = createLogger("runner", { runnerId: env.runnerId }, env.log);
// Telemetry first (OTEL_* come from placement's environment); spans are flushed before every exit.
await startTelemetry({ role: "runner", logger, resourceAttributes: { "modelswap.runner.id": env.runnerId } });
const engine = new LlamaEngine();
await engine.init(env.gpu);

let dataAddress = "";
let control: ControlSession | undefined;
const runner = new Runner({
  runnerId: env.runnerId,
  dataAddress: () => dataAddress,
  engine,
  send: (event) => control?.send(event),
  exit: (code) => {
    health.setServing(false);
    control?.close();
    void exitAfterFlush(code);
  },
  logger,
  unifiedMemory: env.unifiedMemory,
});
const services = [
  runnerDataService({
    logger,
    model: (name) => runner.model(name),
    modelNames: () => runner.modelNames(),
    leaseProblem: (token, model) => env.key.leaseTokenProblem(token, { model, runnerId: env.runnerId, runnerAddress: dataAddress }, Date.now()),
    onStreamStart: () => runner.streamStarted(),
    onStreamEnd: () => runner.streamEnded(),
    onToken: () => runner.tokenGenerated(),
  }),
];
const health = new HealthStatus(services);
const server = await startServer(env.listen, [...services, health.binding(), ...reflectionBindings(services)]);
dataAddress = server.address;
control = new ControlSession({
  runnerId: env.runnerId,
  key: env.key,
  placementAddress: env.placementAddress,
  hello: (authProof) => runner.hello(authProof),
  onCommand: (command) => runner.handle(command),
  onGiveUp: () => void exitAfterFlush(3),
  reconnectGraceMs: env.reconnectGraceMs,
  logger,
});
control.start();
health.setServing(true);
logger.info("runner_listening", { address: dataAddress, runnerPid: process.pid, placement: env.placementAddress, rssBytes: process.memoryUsage.rss() });
setInterval(() => control?.send(runner.heartbeat()), env.heartbeatMs).unref();
process.once("SIGTERM", () => {
  health.setServing(false);
  void exitAfterFlush(0);
});
