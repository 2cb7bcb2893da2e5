import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { credentials, loadPackageDefinition, type Client, type ClientDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { HealthStatus } from "../../common/grpc/health.js";
import { DESCRIPTOR_SETS, descriptorsPath, reflectionBindings } from "../../common/grpc/reflection.js";
import { startServer, type StartedServer } from "../../common/grpc/start-server.js";
import { InferenceService } from "../../gen/modelswap/v1/inference.js";
import { startCluster, type TestCluster } from "../support/cluster.js";
import { projectRoot, storiesModel } from "../support/paths.js";

const require = createRequire(import.meta.url);

interface ReflectionResponse {
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorMessage: string };
}
type ReflectionClient = Client & { ServerReflectionInfo(): ClientDuplexStream<Record<string, unknown>, ReflectionResponse> };

function reflectionClient(address: string): ReflectionClient {
  const root = path.join(path.dirname(require.resolve("@grpc/reflection")), "..", "proto"); // build/src -> build/proto
  const definition = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [root], keepCase: false, defaults: true, oneofs: true });
  const proto = loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => ReflectionClient } } };
  };
  return new proto.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
}

function ask(client: ReflectionClient, request: Record<string, unknown>): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.once("data", (response: ReflectionResponse) => {
      resolve(response);
      call.end();
    });
    call.once("error", reject);
    call.write(request);
  });
}

describe("server reflection from buf's descriptors", () => {
  let server: StartedServer;
  let client: ReflectionClient;

  before(async () => {
    const services = [{ definition: InferenceService as unknown as ServiceDefinition, implementation: {} }];
    const health = new HealthStatus(services);
    server = await startServer("127.0.0.1:0", [...services, health.binding(), ...reflectionBindings(services)]);
    client = reflectionClient(server.address);
  });
  after(async () => {
    client?.close();
    await server?.shutdown(100);
  });

  it("lists only the services this server serves, with health and reflection", async () => {
    const response = await ask(client, { listServices: "*" });
    const names = response.listServicesResponse!.service.map((service) => service.name).sort();
    assert.deepEqual(names, ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "modelswap.v1.Inference"]);
  });

  it("keeps proto3 optional fields optional (proto-loader's descriptors lose them)", async () => {
    const response = await ask(client, { fileContainingSymbol: "modelswap.v1.SamplingParams" });
    const files = response.fileDescriptorResponse!.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
    const inference = files.find((file) => file.name === "modelswap/v1/inference.proto");
    assert.ok(inference, files.map((file) => file.name).join(", "));
    const sampling = inference.messageType.find((message) => message.name === "SamplingParams")!;
    const temperature = sampling.field.find((field) => field.name === "temperature")!;
    assert.equal(temperature.proto3Optional, true);
    assert.equal(sampling.oneofDecl[temperature.oneofIndex!]!.name, "_temperature");
  });

  it("serves gen/*.binpb as `buf build` makes them today from proto/ and the standard gRPC protos (run `npm run gen` after editing protos)", async () => {
    const inputs: Record<(typeof DESCRIPTOR_SETS)[number], string[]> = {
      "descriptors.binpb": [],
      "grpc-health.binpb": ["node_modules/grpc-health-check/proto"],
      "grpc-reflection.binpb": ["node_modules/@grpc/reflection/build/proto", "--path", "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto"],
    };
    for (const name of DESCRIPTOR_SETS) {
      const built = await promisify(execFile)(BUF, ["build", ...inputs[name], "-o", "-"], { cwd: projectRoot, encoding: "buffer", maxBuffer: 16 * 1024 * 1024 });
      assert.ok(Buffer.compare(built.stdout, readFileSync(descriptorsPath(name))) === 0, `gen/${name} is stale: run \`npm run gen\``);
    }
  });
});

const BUF = path.join(projectRoot, "node_modules", ".bin", "buf");

/** `buf curl` through reflection only: no .proto files on its side. */
async function bufCurl(address: string, method: string, body?: object): Promise<unknown> {
  const args = ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...(body ? ["-d", JSON.stringify(body)] : []), `http://${address}/${method}`];
  const { stdout } = await promisify(execFile)(BUF, args, { cwd: projectRoot, timeout: 60_000 }).catch((error: { stderr?: string; message: string }) => {
    throw new Error(`buf ${args.join(" ")} failed: ${error.stderr || error.message}`);
  });
  // a streaming call prints one JSON object per message
  return JSON.parse(`[${stdout.trim().replace(/\n}\n{/g, "\n},\n{")}]`);
}

describe("buf curl against a real gateway, through reflection alone", function () {
  this.timeout(120_000);
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      budget: "200MiB",
      placement: { spare_runners: 0 },
      models: [{ name: "stories", path: storiesModel, threads: 1, context: 256, sequences: 1, gpu: "cpu", preload: true }],
    });
    await cluster.waitForEvent((event) => event.kind === "loaded" && event.model === "stories");
  });
  after(async () => cluster?.stop());

  it("checks health with grpc.health.v1.Health/Check", async () => {
    assert.deepEqual(await bufCurl(cluster.gateway.address, "grpc.health.v1.Health/Check"), [{ status: "SERVING" }]);
  });

  it("lists models and streams a story with modelswap.v1 calls", async () => {
    const [listed] = (await bufCurl(cluster.gateway.address, "modelswap.v1.Inference/ListModels")) as [{ models: { name: string }[] }];
    assert.deepEqual(listed.models.map((model) => model.name), ["stories"]);
    const events = (await bufCurl(cluster.gateway.address, "modelswap.v1.Inference/Generate", { model: "stories", prompt: "Once upon a time", max_tokens: 12 })) as Record<string, { tokens?: number; finishReason?: string; usage?: { completionTokens?: number } }>[];
    const tokens = events.filter((event) => event.token).reduce((sum, event) => sum + (event.token!.tokens ?? 1), 0);
    const done = events.at(-1)!.done;
    assert.ok(done, JSON.stringify(events));
    assert.equal(tokens, done.usage?.completionTokens);
  });
});
