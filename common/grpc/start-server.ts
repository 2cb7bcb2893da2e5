import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { lstatSync, rmSync } from "node:fs";
import { connect } from "node:net";

export interface ServiceBinding {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface StartedServer {
  server: Server;
  /** The bound address, with the real port when port 0 was asked for. */
  address: string;
  shutdown(graceMs?: number): Promise<void>;
}

export interface ServerOptions {
  /** TLS (ServerCredentials.createSsl); plaintext when absent. */
  credentials?: ServerCredentials;
  /** Largest request message accepted; larger ones are refused by grpc-js before they are decoded. Default 8 MiB. */
  maxReceiveMessageBytes?: number;
}

/** Binds a gRPC server on host:port (port 0 = any free port) or unix:/path. */
export async function startServer(address: string, services: ServiceBinding[], options: ServerOptions = {}): Promise<StartedServer> {
  const server = new Server({ "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 8 * 1024 * 1024 });
  for (const service of services) server.addService(service.definition, service.implementation);
  if (address.startsWith("unix:")) await removeStaleSocket(address.slice("unix:".length).replace(/^\/\/(?=\/)/, ""));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort))),
  );
  const bound = address.startsWith("unix:") ? address : address.replace(/:\d+$/, `:${port}`);
  return {
    server,
    address: bound,
    shutdown: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/**
 * A unix socket left by a process that died (kill -9 leaves the file) would make the bind
 * fail with EADDRINUSE: it is removed when nothing answers on it. A live one is kept (the
 * bind then fails, as it should).
 */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!lstatSync(path).isSocket()) return;
  } catch {
    return;
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (!live) rmSync(path, { force: true });
}
