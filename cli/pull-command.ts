import { readConfigFile } from "../common/config/read-config-file.js";
import { formatBytes } from "../common/format-bytes.js";

export interface PullOptions {
  /** Sources to pull; none with a config: every catalog model with a source (`path: hf:…` or a URL). */
  sources: string[];
  configFile: string | undefined;
  /** --dir; else the config's models_dir; else ./models. */
  dir: string | undefined;
  sha256: string | undefined;
  progressBar: boolean;
  huggingFaceEndpoint: string | undefined;
}

/**
 * `modelswap pull`: downloads models into the models folder with node-llama-cpp's downloader
 * (loaded only here, so that other commands do not pay for it). Ctrl-C keeps what was
 * fetched; the same command resumes.
 */
export async function pullCommand(options: PullOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const config = options.configFile ? readConfigFile(options.configFile) : undefined;
  const dir = options.dir ?? config?.modelsDir ?? "models";
  // From a config, each model's own `sha256` checks its file.
  const pulls =
    options.sources.length > 0
      ? options.sources.map((source) => ({ source, sha256: options.sha256 }))
      : (config?.models.flatMap((model) => (model.source ? [{ source: model.source.uri, sha256: model.sha256 ?? options.sha256 }] : [])) ?? []);
  const sources = pulls.map((pull) => pull.source);
  if (sources.length === 0) {
    err.write(config ? `no model in ${options.configFile} has a source (path: hf:… or a URL); nothing to pull\n` : "pull needs a SOURCE or -c FILE\n");
    return config ? 0 : 2;
  }
  if (options.sha256 && sources.length > 1) {
    err.write("--sha256 checks one file: pull one source at a time with it\n");
    return 2;
  }
  const { download } = await import("../services/runner/model-downloader.js");
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    for (const { source, sha256 } of pulls) {
      const started = performance.now();
      const pulled = await download({
        source,
        dir,
        expectedSha256: sha256,
        signal: interrupt.signal,
        progressBar: options.progressBar,
        huggingFaceEndpoint: options.huggingFaceEndpoint,
      });
      const seconds = (performance.now() - started) / 1000;
      const checked = pulled.sha256 ? `, SHA-256 ${pulled.sha256} verified` : "";
      out.write(`pulled ${source} -> ${pulled.path} (${formatBytes(pulled.bytes)} in ${seconds.toFixed(1)} s${checked})\n`);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return 0;
}
