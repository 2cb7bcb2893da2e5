import { credentials, makeClientConstructor, type Client, type ClientReadableStream, type ServiceDefinition, type ServiceError } from "@grpc/grpc-js";
import { HealthImplementation, service as healthServiceDefinition } from "grpc-health-check";
import type { ServiceBinding } from "./start-server.js";

export const HEALTH_SERVICE = "grpc.health.v1.Health";

/** The fully qualified service name of a generated service definition ("modelswap.v1.Inference"). */
export function serviceName(binding: ServiceBinding): string {
  const first = Object.values(binding.definition)[0] as { path: string } | undefined;
  return first ? first.path.split("/")[1]! : "";
}

/**
 * The standard grpc.health.v1.Health service for one server: the overall status ("")
 * and one per served service move together. NOT_SERVING from the start until
 * setServing(true) (the process is ready), and again while it drains.
 */
export class HealthStatus {
  private readonly implementation = new HealthImplementation();
  private readonly names: string[];
  private current = false;

  constructor(services: readonly ServiceBinding[]) {
    this.names = ["", ...services.map(serviceName)];
    this.setServing(false);
  }

  get serving(): boolean {
    return this.current;
  }

  setServing(serving: boolean): void {
    this.current = serving;
    for (const name of this.names) this.implementation.setStatus(name, serving ? "SERVING" : "NOT_SERVING");
  }

  binding(): ServiceBinding {
    const bindings: ServiceBinding[] = [];
    this.implementation.addToServer({ addService: (definition: ServiceBinding["definition"], implementation: ServiceBinding["implementation"]) => bindings.push({ definition, implementation }) } as never);
    return bindings[0]!;
  }
}

interface HealthClient extends Client {
  Watch(request: { service: string }): ClientReadableStream<{ status: string }>;
}
const HealthClientConstructor = makeClientConstructor(healthServiceDefinition as unknown as ServiceDefinition, HEALTH_SERVICE) as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => HealthClient;

/**
 * Follows another server's overall health with Health/Watch; `onChange(true)` while it
 * reports SERVING, `onChange(false)` otherwise (including while it is unreachable, when
 * the watch is retried every `retryMs`). Returns a function that stops watching.
 */
export function watchHealth(address: string, onChange: (serving: boolean) => void, retryMs = 500): () => void {
  const client = new HealthClientConstructor(address, credentials.createInsecure());
  let stopped = false;
  let call: ClientReadableStream<{ status: string }> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let last: boolean | undefined;
  const report = (serving: boolean) => {
    if (serving === last) return;
    last = serving;
    onChange(serving);
  };
  const start = () => {
    if (stopped) return;
    const current = client.Watch({ service: "" });
    call = current;
    let ended = false;
    const again = () => {
      if (ended) return;
      ended = true;
      report(false);
      if (stopped) return;
      retry = setTimeout(start, retryMs);
      retry.unref();
    };
    current.on("data", (message: { status: string }) => report(message.status === "SERVING"));
    current.on("error", (_error: ServiceError) => again());
    current.on("end", again);
  };
  start();
  return () => {
    stopped = true;
    clearTimeout(retry);
    call?.cancel();
    client.close();
  };
}
