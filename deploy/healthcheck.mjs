// Exit 0 when the gRPC server at HOST:PORT (default 127.0.0.1:50051) reports SERVING on the
// standard grpc.health.v1.Health/Check, 1 otherwise. For container health checks and probes.
import { credentials, makeClientConstructor } from "@grpc/grpc-js";
import { service } from "grpc-health-check";

const address = process.argv[2] ?? "127.0.0.1:50051";
const Health = makeClientConstructor(service, "grpc.health.v1.Health");
const client = new Health(address, credentials.createInsecure());
client.Check({ service: process.argv[3] ?? "" }, { deadline: new Date(Date.now() + 2000) }, (error, response) => {
  const status = error ? `error: ${error.details || error.message}` : response.status;
  process.stdout.write(`${address} ${status}\n`);
  client.close();
  process.exit(!error && response.status === "SERVING" ? 0 : 1);
});
