import { createLogger } from "../../common/logger.js";
import { startServer } from "../../common/grpc/start-server.js";
import { ControlSession } from "./control-session.js";
import { LlamaEngine } from "./llama-engine.js";
import { Runner } from "./runner.js";
import { runnerDataService } from "./runner-data-service.js";
import { readRunnerEnv } from "./runner-env.js";

/** Runner process entry: initialise the backend, serve tokens, obey placement. */
const env = readRunnerEnv();
const logger = createLogger("runner", { runnerId: env.runnerId }, env.quietLogs);
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
    control?.close();
    process.exit(code);
  },
  logger,
});
const server = await startServer(env.listen, [
  runnerDataService({
    logger,
    currentModel: () => runner.currentModel(),
    onStreamStart: () => runner.streamStarted(),
    onStreamEnd: () => runner.streamEnded(),
    onToken: () => runner.tokenGenerated(),
  }),
]);
dataAddress = server.address;
control = new ControlSession({
  placementAddress: env.placementAddress,
  hello: () => runner.hello(),
  onCommand: (command) => runner.handle(command),
  onGiveUp: () => process.exit(3),
  reconnectGraceMs: env.reconnectGraceMs,
  logger,
});
control.start();
setInterval(() => control?.send(runner.heartbeat()), env.heartbeatMs).unref();
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => process.exit(0));
