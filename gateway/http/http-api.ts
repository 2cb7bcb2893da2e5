import type { AddressInfo } from "node:net";
import Fastify, { type FastifyError, type FastifyReply } from "fastify";
import { asModelswapError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { Router } from "../../services/router/router.js";
import type { ApiKeys } from "../../common/auth/api-keys.js";
import type { TlsFiles } from "../read-tls-files.js";
import type { RunGenerate } from "../run-generate.js";
import { registerCompletionRoutes } from "./completion-routes.js";
import { registerModelsRoutes } from "./models-routes.js";
import { httpError, httpErrorOf, type HttpError } from "./openai-errors.js";

/** Routes that answer without a key (like gRPC health). */
const OPEN_ROUTES = new Set(["/health"]);

export interface HttpApiOptions {
  /** host:port (port 0 = any free port). */
  listen: string;
  router: Router;
  runGenerate: RunGenerate;
  maxPromptBytes: number;
  logger: Logger;
  /** API keys; every /v1 route needs the `infer` scope. Absent: open. */
  keys: ApiKeys | undefined;
  tls: TlsFiles | undefined;
  /** Readiness for GET /health (placement reachable and not draining). */
  serving: () => boolean;
}

export interface RunningHttpApi {
  /** host:port actually bound. */
  address: string;
  close(): Promise<void>;
}

/**
 * The OpenAI-compatible HTTP API on Fastify: /v1/chat/completions, /v1/completions,
 * /v1/models, and GET /health (open, like gRPC health). Keys are checked in onRequest,
 * before the body is read; every error leaves in OpenAI's JSON error shape.
 */
export async function startHttpApi(options: HttpApiOptions): Promise<RunningHttpApi> {
  const { host, port } = splitHostPort(options.listen);
  // A prompt of max_prompt_bytes fits even with every character JSON-escaped to \uXXXX pairs (x3), plus the rest of the body.
  const bodyLimit = options.maxPromptBytes * 3 + 64 * 1024;
  const app = Fastify({
    logger: false,
    bodyLimit,
    forceCloseConnections: true,
    return503OnClosing: true,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
  });
  const onUnexpected = (error: unknown) => options.logger.error("unexpected_error", { error });
  const answer = (reply: FastifyReply, error: HttpError) => reply.code(error.status).headers(error.headers).send(error.body);

  const keys = options.keys;
  if (keys) {
    // Every route but the open ones needs a key, decided on the matched route (not the raw URL, which may be encoded).
    app.addHook("onRequest", async (request) => {
      const route = request.routeOptions.url;
      if (route !== undefined && OPEN_ROUTES.has(route)) return;
      keys.authorize(request.headers.authorization, "infer", `${request.method} ${route ?? "the HTTP API"}`);
    });
  }
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (asModelswapError(error)) return answer(reply, httpErrorOf(error, onUnexpected));
    const status = error.statusCode;
    if (status === 413) return answer(reply, httpError(413, `the request body is over ${bodyLimit} bytes; send a shorter prompt (max_prompt_bytes is ${options.maxPromptBytes})`));
    // Fastify's own refusals (bad JSON, wrong content type, ...) say what was wrong.
    if (status !== undefined && status >= 400 && status < 500) return answer(reply, httpError(status, error.message.slice(0, 300)));
    return answer(reply, httpErrorOf(error, onUnexpected));
  });
  app.setNotFoundHandler((request, reply) =>
    answer(reply, httpError(404, `no route for ${request.method} ${request.url.slice(0, 64)}; the API has POST /v1/chat/completions, POST /v1/completions, GET /v1/models`)),
  );
  app.get("/health", async (_request, reply) => {
    const serving = options.serving();
    return reply.code(serving ? 200 : 503).send({ status: serving ? "serving" : "not_serving" });
  });
  registerModelsRoutes(app, options.router);
  registerCompletionRoutes(app, options);

  await app.listen({ host, port });
  const bound = app.server.address() as AddressInfo;
  const address = `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
  return { address, close: () => app.close() };
}

function splitHostPort(listen: string): { host: string; port: number } {
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(listen);
  if (!match) throw new Error(`http.listen must be host:port (got "${listen}")`);
  return { host: match[1]!, port: Number(match[2]) };
}
