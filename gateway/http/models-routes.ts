import type { FastifyInstance } from "fastify";
import { notFound } from "../../common/errors.js";
import { ModelState, type ModelInfo } from "../../gen/modelswap/v1/inference.js";
import type { Router } from "../../services/router/router.js";
import { checkName } from "../../services/router/validate-request.js";

const STATE_NAMES: Readonly<Record<number, string>> = {
  [ModelState.MODEL_STATE_NOT_LOADED]: "not_loaded",
  [ModelState.MODEL_STATE_LOADING]: "loading",
  [ModelState.MODEL_STATE_RESIDENT]: "resident",
  [ModelState.MODEL_STATE_UNLOADING]: "unloading",
  [ModelState.MODEL_STATE_NOT_DOWNLOADED]: "not_downloaded",
  [ModelState.MODEL_STATE_DOWNLOADING]: "downloading",
};

/** OpenAI's model object, with the catalog entry and its residency as extra fields. Pure. */
export function openAiModel(info: ModelInfo) {
  return {
    id: info.name,
    object: "model",
    created: 0,
    owned_by: "modelswap",
    aliases: info.aliases,
    tasks: info.tasks,
    state: STATE_NAMES[info.state] ?? "unknown",
    context_size: info.contextSize,
    file_bytes: info.fileBytes,
    estimated_bytes: info.estimatedBytes,
    measured_bytes: info.measuredBytes,
    pinned: info.pinned,
    replicas: info.replicas,
    in_flight: info.inFlight,
    queued: info.queued,
  };
}

/** GET /v1/models (the catalog with residency) and GET /v1/models/{model} (by name or alias). */
export function registerModelsRoutes(app: FastifyInstance, router: Router): void {
  app.get("/v1/models", async () => ({ object: "list", data: (await router.listModels()).map(openAiModel) }));
  app.get<{ Params: { model: string } }>("/v1/models/:model", async (request) => {
    const name = request.params.model;
    checkName("model", name);
    const models = await router.listModels();
    const info = models.find((model) => model.name === name || model.aliases.includes(name));
    if (!info) throw notFound(`model "${name}" is not in the catalog; known models: ${models.map((model) => model.name).join(", ")}`);
    return openAiModel(info);
  });
}
