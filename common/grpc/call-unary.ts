import type { ServiceError } from "@grpc/grpc-js";

/** A callback-style unary call as a promise: `callUnary((done) => client.getStatus({}, done))`. */
export function callUnary<Res>(invoke: (callback: (error: ServiceError | null, response: Res) => void) => void): Promise<Res> {
  return new Promise((resolve, reject) => invoke((error, response) => (error ? reject(error) : resolve(response))));
}
