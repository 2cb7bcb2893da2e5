import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HEALTH_SERVICE, serviceName } from "./health.js";
import type { ServiceBinding } from "./start-server.js";

export const REFLECTION_SERVICE = "grpc.reflection.v1.ServerReflection";

/**
 * gRPC server reflection (v1 and v1alpha) for `services`, plus the health and
 * reflection services themselves. Every descriptor is one that `buf build` wrote (`npm run
 * gen`): ours in gen/descriptors.binpb, the two standard gRPC protos (as shipped by the
 * packages that implement them) in gen/grpc-health.binpb and gen/grpc-reflection.binpb.
 * proto-loader's re-created descriptors are not used: they lose proto3 `optional`, and
 * their map entries are misnamed, so that buf curl and grpcurl reject the health file
 * ("failed to find service named grpc.health.v1.Health"). With these, both need no .proto files.
 */
export function reflectionBindings(services: readonly ServiceBinding[]): ServiceBinding[] {
  const names = [...services.map(serviceName), HEALTH_SERVICE, REFLECTION_SERVICE];
  const reflection = new ReflectionService(descriptorPackage(), { services: names });
  const bindings: ServiceBinding[] = [];
  reflection.addToServer({ addService: (definition: ServiceBinding["definition"], implementation: ServiceBinding["implementation"]) => bindings.push({ definition, implementation }) } as never);
  return bindings;
}

/** The descriptor sets that reflection serves, all in gen/. */
export const DESCRIPTOR_SETS = ["descriptors.binpb", "grpc-health.binpb", "grpc-reflection.binpb"] as const;

let cached: PackageDefinition | undefined;

/** A package definition in the shape @grpc/reflection reads: entries carrying `fileDescriptorProtos`. */
function descriptorPackage(): PackageDefinition {
  if (cached) return cached;
  const files = DESCRIPTOR_SETS.flatMap((name) => fromBinary(FileDescriptorSetSchema, readFileSync(descriptorsPath(name))).file);
  cached = { "modelswap.descriptors": { fileDescriptorProtos: files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file))) } } as unknown as PackageDefinition;
  return cached;
}

/** gen/<name> at the project root (from dist/common/grpc or common/grpc). */
export function descriptorsPath(name: (typeof DESCRIPTOR_SETS)[number] = "descriptors.binpb"): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(directory, "gen", name);
    if (existsSync(candidate) && existsSync(join(directory, "package.json"))) return candidate;
    const parent = dirname(directory);
    if (parent === directory) throw new Error(`gen/${name} is missing; run \`npm run gen\` (buf build)`);
    directory = parent;
  }
}
