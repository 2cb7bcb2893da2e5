import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HEALTH_SERVICE, serviceName } from "./health.js";
import type { ServiceBinding } from "./start-server.js";

export const REFLECTION_SERVICE = "grpc.reflection.v1.ServerReflection";

const require = createRequire(import.meta.url);

/**
 * gRPC server reflection (v1 and v1alpha) for `services`, plus the health and
 * reflection services themselves. Our descriptors are the real ones that `buf build`
 * wrote to gen/descriptors.binpb (`npm run gen`), not proto-loader's re-creation,
 * which loses proto3 `optional`; the two standard gRPC protos come from the packages
 * that implement them. With it, `buf curl` and grpcurl need no local .proto files.
 */
export function reflectionBindings(services: readonly ServiceBinding[]): ServiceBinding[] {
  const names = [...services.map(serviceName), HEALTH_SERVICE, REFLECTION_SERVICE];
  const reflection = new ReflectionService(descriptorPackage(), { services: names });
  const bindings: ServiceBinding[] = [];
  reflection.addToServer({ addService: (definition: ServiceBinding["definition"], implementation: ServiceBinding["implementation"]) => bindings.push({ definition, implementation }) } as never);
  return bindings;
}

let cached: PackageDefinition | undefined;

/** A package definition in the shape @grpc/reflection reads: entries carrying `fileDescriptorProtos`. */
function descriptorPackage(): PackageDefinition {
  if (cached) return cached;
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(descriptorsPath()));
  const ours = set.file.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
  const healthProto = join(packageRoot("grpc-health-check"), "proto");
  const reflectionProto = join(packageRoot("@grpc/reflection"), "build", "proto");
  const standard = loadSync(["health/v1/health.proto", "grpc/reflection/v1/reflection.proto"], { includeDirs: [healthProto, reflectionProto] });
  cached = { "modelswap.descriptors": { fileDescriptorProtos: ours }, ...standard } as unknown as PackageDefinition;
  return cached;
}

/** gen/descriptors.binpb at the project root (from dist/common/grpc or common/grpc). */
export function descriptorsPath(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(directory, "gen", "descriptors.binpb");
    if (existsSync(candidate) && existsSync(join(directory, "package.json"))) return candidate;
    const parent = dirname(directory);
    if (parent === directory) throw new Error("gen/descriptors.binpb is missing; run `npm run gen` (buf build -o gen/descriptors.binpb)");
    directory = parent;
  }
}

function packageRoot(name: string): string {
  let directory = dirname(require.resolve(name));
  while (!existsSync(join(directory, "package.json"))) directory = dirname(directory);
  return directory;
}
