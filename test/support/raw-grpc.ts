import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

/** What a raw call came back with: the response bytes (a unary call's, or a stream's, joined), or the status. */
export interface RawResult {
  messages: Buffer[];
  error: ServiceError | undefined;
}

const identity = (value: Buffer) => value;

/** A client that sends any bytes as any method's request: for door checks and fuzzing. */
export function rawClient(address: string, creds = credentials.createInsecure()): Client {
  return new Client(address, creds, { "grpc.max_send_message_length": 64 * 1024 * 1024, "grpc.max_receive_message_length": 64 * 1024 * 1024 });
}

export function rawUnary(client: Client, path: string, body: Buffer, metadata = new Metadata(), deadlineMs = 20_000): Promise<RawResult> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, body, metadata, { deadline: Date.now() + deadlineMs }, (error, response) =>
      resolve({ messages: response ? [response] : [], error: error ?? undefined }),
    );
  });
}

export function rawServerStream(client: Client, path: string, body: Buffer, metadata = new Metadata(), deadlineMs = 20_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const result: RawResult = { messages: [], error: undefined };
    const call = client.makeServerStreamRequest(path, identity, identity, body, metadata, { deadline: Date.now() + deadlineMs });
    call.on("data", (message: Buffer) => result.messages.push(message));
    call.on("error", (error: ServiceError) => {
      result.error = error;
      resolve(result);
    });
    call.on("end", () => resolve(result));
  });
}

export function bearer(key: string): Metadata {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}
