/**
 * What one Node-to-Node gRPC hop costs on this box, the floor under modelswap's warm TTFT (a
 * warm request makes two: client -> gateway, gateway -> runner): the time from a server-stream
 * call to its first message, with grpc-js on both sides (the same library and settings the
 * gateway and runners use), server in a child process, loopback.
 *
 *   npx tsc -p . && node dist/bench/grpc-hop.js [--calls 200] [--warmup 20]
 *
 * Prints p50 / p90 / min in ms. Not part of the tests; it prints figures and asserts nothing.
 */
import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { credentials, makeGenericClientConstructor, Server, ServerCredentials, type ServerWritableStream, type ServiceDefinition } from "@grpc/grpc-js";

const identity = (value: Buffer) => value;
/** One server-stream method on raw bytes: no protobuf work on either side. */
const SERVICE: ServiceDefinition = {
  first: {
    path: "/bench.Hop/First",
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

if (process.argv.includes("--server")) {
  const server = new Server();
  server.addService(SERVICE, {
    first: (call: ServerWritableStream<Buffer, Buffer>) => {
      call.write(Buffer.from("token"));
      call.end();
    },
  });
  server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    process.send!({ port });
  });
  process.on("disconnect", () => process.exit(0));
} else {
  const { values } = parseArgs({ options: { calls: { type: "string", default: "200" }, warmup: { type: "string", default: "20" } } });
  const calls = Number(values.calls);
  const warmup = Number(values.warmup);
  const child = fork(fileURLToPath(import.meta.url), ["--server"], { stdio: "inherit" });
  const port = await new Promise<number>((resolve) => child.once("message", (message: { port: number }) => resolve(message.port)));
  const Client = makeGenericClientConstructor(SERVICE, "Hop");
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as { first(request: Buffer): NodeJS.EventEmitter; close(): void };
  const firstMessageMs = () =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const call = client.first(Buffer.alloc(0));
      call.once("data", () => resolve(performance.now() - started));
      call.once("error", reject);
    });
  const times: number[] = [];
  for (let index = 0; index < warmup + calls; index++) {
    const ms = await firstMessageMs();
    if (index >= warmup) times.push(ms);
  }
  client.close();
  child.disconnect();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(2);
  process.stdout.write(`grpc-js server-stream, first message, Node to Node on loopback (${calls} calls after ${warmup} warm-up): p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, min ${times[0]!.toFixed(2)} ms\n`);
}
