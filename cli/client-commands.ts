import type { ServiceError } from "@grpc/grpc-js";
import { AdminClient, type ResidencyEvent } from "../gen/modelswap/v1/admin.js";
import { InferenceClient, LoadingPhase, type GenerateResponse, type SamplingParams } from "../gen/modelswap/v1/inference.js";
import { formatBytes, formatDuration, stateName, table } from "./format.js";
import { formatBytes as formatByteCount } from "../common/format-bytes.js";
import { callUnary } from "../common/grpc/call-unary.js";
import type { GatewayTarget } from "./gateway-target.js";

/** Commands that talk to a running gateway. Each resolves to the process exit code. */


export function describeError(error: unknown): string {
  const e = error as Partial<ServiceError>;
  return e.details ? `error: ${e.details}` : `error: ${e.message ?? String(error)}`;
}

export interface GenerateOptions {
  model: string;
  task: string;
  prompt: string;
  maxTokens: number;
  sampling: SamplingParams;
  chat: boolean;
  timeoutMs: number | undefined;
}

export async function generateCommand(target: GatewayTarget, options: GenerateOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const client = new InferenceClient(target.address, target.credentials);
  const deadline = options.timeoutMs ? { deadline: new Date(Date.now() + options.timeoutMs) } : {};
  const call = options.chat
    ? client.chat({ model: options.model, task: options.task, messages: [{ role: "user", content: options.prompt }], maxTokens: options.maxTokens, sampling: options.sampling, resumable: true }, target.metadata(), deadline)
    : client.generate({ model: options.model, task: options.task, prompt: options.prompt, maxTokens: options.maxTokens, sampling: options.sampling, resumable: true }, target.metadata(), deadline);
  process.once("SIGINT", () => call.cancel());
  let lastLoadingShown = -1;
  let lastDownloadShown = -2;
  return new Promise<number>((resolve) => {
    call.on("data", (message: GenerateResponse) => {
      const event = message.event;
      if (!event) return;
      switch (event.$case) {
        case "queued":
          err.write(`[queued: position ${event.value.position} for ${event.value.model}]\n`);
          break;
        case "loading": {
          if (event.value.phase === LoadingPhase.LOADING_PHASE_DOWNLOADING) {
            // First use of a model named by its source: the download's start, then every tenth of it.
            const { downloadedBytes, totalBytes } = event.value;
            const tenth = totalBytes > 0 ? Math.floor((downloadedBytes / totalBytes) * 10) : -1;
            if (tenth !== lastDownloadShown) err.write(`[downloading ${event.value.model}: ${totalBytes > 0 ? `${formatByteCount(downloadedBytes)} of ${formatByteCount(totalBytes)}` : "started"}]\n`);
            lastDownloadShown = tenth;
            break;
          }
          // The start and the end of a load; the steps between would only scroll.
          const shown = event.value.progress >= 1 ? 100 : 0;
          if (shown !== lastLoadingShown) err.write(`[loading ${event.value.model}: ${shown === 100 ? "done" : "started"}]\n`);
          lastLoadingShown = shown;
          break;
        }
        case "token":
          out.write(event.value.text);
          break;
        case "done": {
          const { usage, timings } = event.value;
          const cached = usage?.cachedPromptTokens ? ` (${usage.cachedPromptTokens} cached)` : "";
          out.write("\n");
          err.write(
            `[${event.value.model}: ${event.value.finishReason}; ${usage?.promptTokens ?? 0} prompt${cached} + ${usage?.completionTokens ?? 0} completion tokens; ` +
              `queue ${formatDuration(timings?.queueMs ?? 0)}, load ${formatDuration(timings?.loadMs ?? 0)}, TTFT ${formatDuration(timings?.ttftMs ?? 0)}, ` +
              `total ${formatDuration(timings?.totalMs ?? 0)}, ${(timings?.tokensPerSecond ?? 0).toFixed(1)} tokens/s]\n`,
          );
          break;
        }
      }
    });
    call.on("error", (error: ServiceError) => {
      err.write(`\n${describeError(error)}\n`);
      client.close();
      resolve(1);
    });
    call.on("end", () => {
      client.close();
      resolve(0);
    });
  });
}

export async function modelsCommand(target: GatewayTarget, out: NodeJS.WritableStream): Promise<number> {
  const client = new InferenceClient(target.address, target.credentials);
  try {
    const { models } = await callUnary<{ models: import("../gen/modelswap/v1/inference.js").ModelInfo[] }>((cb) => client.listModels({}, target.metadata(), cb));
    out.write(
      table(
        ["NAME", "ALIASES", "TASKS", "STATE", "FILE", "CONTEXT"],
        models.map((model) => [model.name, model.aliases.join(",") || "-", model.tasks.join(",") || "-", stateName(model.state), formatBytes(model.fileBytes), String(model.contextSize)]),
      ) + "\n",
    );
    return 0;
  } finally {
    client.close();
  }
}

export async function psCommand(target: GatewayTarget, out: NodeJS.WritableStream): Promise<number> {
  const client = new AdminClient(target.address, target.credentials);
  try {
    const status = await callUnary<import("../gen/modelswap/v1/admin.js").StatusResponse>((cb) => client.getStatus({}, target.metadata(), cb));
    out.write(
      table(
        ["MODEL", "STATE", "MEASURED", "ESTIMATED", "REPLICAS", "IN-FLIGHT", "QUEUED", "IDLE", "TTL LEFT", "PINNED"],
        status.models.map(({ info, idleMs, ttlLeftMs }) => [
          info!.name,
          stateName(info!.state),
          formatBytes(info!.measuredBytes),
          formatBytes(info!.estimatedBytes),
          String(info!.replicas),
          String(info!.inFlight),
          String(info!.queued),
          idleMs > 0 ? formatDuration(idleMs) : "-",
          formatDuration(ttlLeftMs),
          info!.pinned ? "yes" : "no",
        ]),
      ) + "\n",
    );
    // The GPU's own budget, on a discrete GPU with gpu_budget (0 = not budgeted: nothing shown).
    const gpu = status.gpuBudgetBytes > 0 ? `, gpu budget ${formatBytes(status.gpuBudgetBytes)}, gpu resident ${formatByteCount(status.gpuResidentBytes)}` : "";
    out.write(`\nbudget ${formatBytes(status.budgetBytes)}, resident ${formatBytes(status.residentBytes)}${gpu}, policy ${status.evictionPolicy}\n`);
    if (status.runners.length > 0) {
      // One line per runner: the models it hosts (shared runners host several; "isolated" ones one).
      const hostedModels = (runner: (typeof status.runners)[number]) =>
        runner.models.length === 0
          ? "-"
          : runner.models
              .map((model) =>
                model.state === "ready"
                  ? `${model.name} [${model.backend}${model.gpuLayers > 0 ? ` ${model.gpuLayers} layers` : ""}${model.gpuBytes > 0 ? `, ${formatBytes(model.gpuBytes)} GPU` : ""}]`
                  : `${model.name} (${model.state})`,
              )
              .join(", ");
      out.write(
        "\n" +
          table(
            ["RUNNER", "PID", "STATE", "KIND", "MODELS", "RSS", "OWN", "IN-FLIGHT"],
            status.runners.map((runner) => [
              runner.id,
              String(runner.pid),
              runner.state,
              runner.isolated ? "isolated" : "shared",
              hostedModels(runner),
              formatBytes(runner.rssBytes),
              formatBytes(runner.baseBytes),
              String(runner.inFlight),
            ]),
          ) +
          "\n",
      );
    }
    return 0;
  } finally {
    client.close();
  }
}

export function watchCommand(target: GatewayTarget, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const client = new AdminClient(target.address, target.credentials);
  const call = client.watchStatus({}, target.metadata());
  process.once("SIGINT", () => call.cancel());
  call.on("metadata", () => err.write(`watching residency events at ${target.address} (Ctrl-C stops)\n`));
  return new Promise((resolve) => {
    call.on("data", (event: ResidencyEvent) => {
      const time = new Date(event.timeUnixMs).toISOString().slice(11, 23);
      const parts = [time, event.kind.padEnd(14), event.model || "-"];
      if (event.reason) parts.push(`(${event.reason})`);
      if (event.bytes) parts.push(formatBytes(event.bytes));
      if (event.runnerId) parts.push(`runner ${event.runnerId}`);
      parts.push(`queue ${event.queueDepth}`);
      out.write(parts.join("  ") + "\n");
    });
    call.on("error", (error: ServiceError) => {
      if (error.code !== 1) err.write(`${describeError(error)}\n`);
      client.close();
      resolve(error.code === 1 ? 0 : 1);
    });
    call.on("end", () => resolve(0));
  });
}

export async function adminCommand(target: GatewayTarget, action: "load" | "unload" | "pin" | "unpin", model: string, out: NodeJS.WritableStream): Promise<number> {
  const client = new AdminClient(target.address, target.credentials);
  try {
    if (action === "load") {
      const response = await callUnary<{ loadMs: number }>((cb) => client.loadModel({ model }, target.metadata(), cb));
      out.write(`${model} is resident (last load ${formatDuration(response.loadMs)})\n`);
    } else if (action === "unload") {
      await callUnary((cb) => client.unloadModel({ model }, target.metadata(), cb));
      out.write(`${model} will be unloaded when its streams end\n`);
    } else {
      await callUnary((cb) => client.pinModel({ model, pinned: action === "pin" }, target.metadata(), cb));
      out.write(`${model} ${action === "pin" ? "pinned" : "unpinned"}\n`);
    }
    return 0;
  } finally {
    client.close();
  }
}
