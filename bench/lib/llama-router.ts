import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { isAlive, processTree, signalTree } from "./process-tree.js";

/**
 * llama.cpp's `llama-server` in router mode (`--models-dir`): one router process that starts a
 * child `llama-server` per loaded model and forwards each request by its OpenAI `model` field
 * (the file name without `.gguf`). Started in its own process group; `stop` ends the group and
 * every descendant.
 */
export interface LlamaRouter {
  url: string;
  pid: number;
  /** Model ids the router lists (file names without .gguf). */
  modelIds: string[];
  logPath: string;
  /** Ids of the models whose instance is loaded. */
  loadedModels(): Promise<string[]>;
  /** Whether any model is loading or unloading. */
  busy(): Promise<boolean>;
  stop(): Promise<void>;
}

export interface RouterOptions {
  binary: string;
  modelsDir: string;
  modelsMax: number;
  threads: number;
  contextSize: number;
  logPath: string;
  startTimeoutMs: number;
}

/** Every router still running, so that a time limit or an error can stop them all. */
export const runningRouters = new Set<LlamaRouter>();
export const stopAllRouters = () => Promise.all([...runningRouters].map((router) => router.stop()));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

interface ModelListing {
  data?: { id: string; status?: { value?: string } }[];
}

/**
 * fetch, sent once more when the connection failed before any answer: a kept-alive connection
 * that llama-server's HTTP server closed as idle (after 5 s) just as it was reused ("other side
 * closed"); such a request never reached the server.
 */
async function fetchOnce(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    if (code !== "UND_ERR_SOCKET" && code !== "ECONNRESET") throw error;
    return fetch(url, init);
  }
}

async function listModels(url: string): Promise<ModelListing> {
  const response = await fetchOnce(`${url}/models`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`GET /models: HTTP ${response.status}`);
  return (await response.json()) as ModelListing;
}

export async function startLlamaRouter(options: RouterOptions): Promise<LlamaRouter> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    "--models-dir", options.modelsDir,
    "--models-max", String(options.modelsMax),
    "--host", "127.0.0.1",
    "--port", String(port),
    // inherited by each model instance:
    "--threads", String(options.threads),
    "--threads-batch", String(options.threads),
    "--ctx-size", String(options.contextSize),
    "--parallel", "1",
  ];
  const log = createWriteStream(options.logPath);
  const child: ChildProcess = spawn(options.binary, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  // two sources into one file: neither ends it; the child's close does
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  child.once("close", () => log.end());
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${options.binary}`);
  let exited = false;
  child.once("exit", () => (exited = true));

  const stop = async () => {
    runningRouters.delete(router);
    const tree = processTree(pid);
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      // group gone
    }
    signalTree(tree, "SIGTERM");
    const until = Date.now() + 5000;
    while (Date.now() < until && (!exited || processTree(pid).length > 0 || tree.some(isAlive))) await sleep(50);
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // group gone
    }
    signalTree(tree.filter(isAlive), "SIGKILL");
  };
  const router: LlamaRouter = {
    url,
    pid,
    modelIds: [],
    logPath: options.logPath,
    loadedModels: async () => ((await listModels(url)).data ?? []).filter((model) => model.status?.value === "loaded").map((model) => model.id),
    busy: async () => ((await listModels(url)).data ?? []).some((model) => model.status?.value === "loading" || model.status?.value === "unloading"),
    stop,
  };
  runningRouters.add(router);

  const deadline = Date.now() + options.startTimeoutMs;
  for (;;) {
    if (exited) throw new Error(`llama-server exited at start; its log (${options.logPath}):\n${tail(options.logPath)}`);
    if (Date.now() > deadline) throw new Error(`llama-server did not answer /health within ${options.startTimeoutMs} ms; log:\n${tail(options.logPath)}`);
    try {
      const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (health.ok) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  router.modelIds = ((await listModels(url)).data ?? []).map((model) => model.id);
  return router;
}


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export interface StreamTiming {
  /** Request sent to the first token received. */
  ttftMs: number;
  /** First to last token received. */
  decodeMs: number;
  tokens: number;
  /** Tokens in the first message (the decode rate counts the ones after it). */
  firstMessageTokens: number;
  text: string;
  /** Decode tok/s as the server reports it (llama-server: timings.predicted_per_second; modelswap: done.timings.tokens_per_second). */
  serverTokPerS: number;
}

/**
 * Tokens per second after the first message, over several streams: summed tokens over summed
 * time (a fast stream whose messages arrive in one read has a decode time near 0; summed, it
 * cannot blow the rate up). NaN when there is nothing to measure.
 */
export function decodeRate(timings: readonly StreamTiming[]): number {
  const tokens = timings.reduce((sum, timing) => sum + timing.tokens - timing.firstMessageTokens, 0);
  const ms = timings.reduce((sum, timing) => sum + timing.decodeMs, 0);
  return tokens > 0 && ms > 0 ? tokens / (ms / 1000) : Number.NaN;
}

/**
 * One streamed `/v1/completions` request: greedy, EOS ignored, `maxTokens` tokens. Timings are
 * taken when each server-sent event arrives. `cachePrompt` (llama-server's default: true) lets a
 * request re-use the KV cache of an earlier one with the same prompt prefix.
 */
export async function routerCompletion(
  url: string,
  model: string,
  prompt: string,
  maxTokens: number,
  timeoutMs: number,
  options: { cachePrompt?: boolean } = {},
): Promise<StreamTiming> {
  const started = performance.now();
  const response = await fetchOnce(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      repeat_penalty: 1,
      ignore_eos: true,
      stream: true,
      cache_prompt: options.cachePrompt ?? true,
    }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok || !response.body) throw new Error(`POST /v1/completions for ${model}: HTTP ${response.status} ${await response.text()}`);
  let firstMs = 0;
  let lastMs = 0;
  let chunks = 0;
  let reportedTokens = 0;
  let serverTokPerS = Number.NaN;
  let text = "";
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    const now = performance.now();
    buffer += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6).trim();
        if (data === "[DONE]") continue;
        const parsed = JSON.parse(data) as {
          choices?: { text?: string }[];
          usage?: { completion_tokens?: number };
          timings?: { predicted_n?: number; predicted_per_second?: number };
          error?: unknown;
        };
        if (parsed.error) throw new Error(`llama-server error for ${model}: ${JSON.stringify(parsed.error)}`);
        const piece = parsed.choices?.[0]?.text ?? "";
        if (piece.length > 0) {
          if (firstMs === 0) firstMs = now;
          lastMs = now;
          chunks++;
          text += piece;
        }
        reportedTokens = parsed.timings?.predicted_n ?? parsed.usage?.completion_tokens ?? reportedTokens;
        serverTokPerS = parsed.timings?.predicted_per_second ?? serverTokPerS;
      }
    }
  }
  if (firstMs === 0) throw new Error(`llama-server streamed no token for ${model}`);
  return { ttftMs: firstMs - started, decodeMs: lastMs - firstMs, tokens: reportedTokens || chunks, firstMessageTokens: 1, text, serverTokPerS };
}
