import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { createModelDownloader } from "node-llama-cpp";
import { parseModelSource, type ModelSource } from "../../common/config/parse-model-source.js";
import { cancelled, failedPrecondition, invalidArgument, ModelswapError, notFound, permissionDenied, unavailable } from "../../common/errors.js";

export interface DownloadProgress {
  /** Bytes on disk so far (a resumed download starts at what the last try kept). */
  bytes: number;
  /** Size of the whole model (all parts of a split model); 0 while unknown. */
  totalBytes: number;
  /** Average over the download; 0 before the first bytes. */
  bytesPerSecond: number;
  /** Estimate; undefined while unknown. */
  secondsLeft: number | undefined;
}

export interface DownloadRequest {
  /** `hf:<user>/<repo>:<quant>`, `hf:<user>/<repo>/<file>.gguf[#branch]`, an http(s) URL, or a parsed source. */
  source: string | ModelSource;
  /** Folder the file goes to (created if missing): models_dir. */
  dir: string;
  /** Hex SHA-256 the finished file must have; a mismatch deletes the file and fails. */
  expectedSha256?: string;
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborting stops the download and keeps what was fetched: the next download() of the same source resumes. */
  signal?: AbortSignal;
  /** Hugging Face endpoint (a mirror); default node-llama-cpp's: $MODEL_ENDPOINT, $HF_ENDPOINT, else huggingface.co. */
  huggingFaceEndpoint?: string;
  /** node-llama-cpp's own progress bar (bytes, speed, time left) on stdout: for a terminal. */
  progressBar?: boolean;
}

export interface DownloadedModel {
  /** The file to load (the first part of a split model). */
  path: string;
  /** Bytes of the whole model on disk. */
  bytes: number;
  /** Present when `expectedSha256` was given (and matched). */
  sha256?: string;
}

/** How long the reachability check before a download may take. */
const PROBE_TIMEOUT_MS = 15_000;
const DEFAULT_HF_ENDPOINT = "https://huggingface.co/";
const ABORT_GRACE_MS = 2_000;

/**
 * Downloads a model with node-llama-cpp's downloader (ipull: Range requests, retries after a
 * cut connection, progress kept beside the file in `<file>.ipull`, so that an interrupted
 * download resumes). A file already complete in `dir` is not fetched again. Errors are
 * ModelswapErrors whose message says what to do: offline (UNAVAILABLE), unknown file or
 * quantisation (NOT_FOUND), checksum mismatch (FAILED_PRECONDITION), interrupted (CANCELLED).
 */
export async function download(request: DownloadRequest): Promise<DownloadedModel> {
  const source = typeof request.source === "string" ? parsed(request.source) : request.source;
  const expected = request.expectedSha256?.toLowerCase();
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected)) throw invalidArgument(`--sha256 must be 64 hex digits (got "${request.expectedSha256}")`);
  request.signal?.throwIfAborted();
  await mkdir(request.dir, { recursive: true });
  await checkReachable(source, request);

  const downloader = await createModelDownloader({
    modelUri: source.uri,
    dirPath: request.dir,
    fileName: source.fileName,
    showCliProgress: request.progressBar ?? false,
    deleteTempFileOnCancel: false,
    skipExisting: true,
    endpoints: request.huggingFaceEndpoint ? { huggingFace: request.huggingFaceEndpoint } : undefined,
    onProgress: request.onProgress
      ? ({ totalSize, downloadedSize, averageSpeed, estimatedTimeLeft }) =>
          request.onProgress!({
            bytes: downloadedSize,
            totalBytes: totalSize,
            bytesPerSecond: averageSpeed,
            secondsLeft: Number.isFinite(estimatedTimeLeft) && totalSize > 0 ? estimatedTimeLeft / 1000 : undefined,
          })
      : undefined,
  }).catch((error: unknown) => {
    throw describeFailure(error, source);
  });
  if (expected !== undefined && downloader.totalFiles > 1) {
    throw invalidArgument(`${source.uri} is split into ${downloader.totalFiles} files; --sha256 checks a single file (pull it without --sha256)`);
  }

  const interrupted = () => cancelled(`download of ${source.uri} interrupted at ${downloader.downloadedSize} of ${downloader.totalSize} bytes; the same command resumes it`);
  let path: string;
  try {
    const downloading = downloader.download({ signal: request.signal });
    path = await (request.signal ? Promise.race([downloading, settledSoonAfterAbort(request.signal, downloading)]) : downloading);
  } catch (error) {
    throw request.signal?.aborted ? interrupted() : describeFailure(error, source);
  }
  // A download closed by the signal can also end without an error.
  if (request.signal?.aborted) throw interrupted();
  const bytes = downloader.totalFiles > 1 ? downloader.totalSize : (await stat(path)).size;
  if (expected === undefined) return { path, bytes };
  const actual = await sha256Of(path);
  if (actual !== expected) {
    await rm(path, { force: true });
    throw failedPrecondition(
      `${source.uri}: SHA-256 of the download is ${actual}, expected ${expected}; the file was deleted. ` +
        `Check the checksum you gave, or the source (a changed or corrupted file).`,
    );
  }
  return { path, bytes, sha256: actual };
}

/**
 * Rejects ABORT_GRACE_MS after `signal` aborts unless `downloading` settled: the downloader
 * cannot cancel a request whose server has not sent its headers yet, and an interrupted
 * download must still end promptly (what arrived is kept for the next try).
 */
function settledSoonAfterAbort(signal: AbortSignal, downloading: Promise<unknown>): Promise<never> {
  return new Promise((_resolve, reject) => {
    const onAbort = () => setTimeout(() => reject(signal.reason), ABORT_GRACE_MS).unref();
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    downloading.then(
      () => signal.removeEventListener("abort", onAbort),
      () => signal.removeEventListener("abort", onAbort),
    );
  });
}

function parsed(text: string): ModelSource {
  const result = parseModelSource(text);
  if (!result.ok) throw invalidArgument(`the model source ${result.reason}`);
  return result.source;
}

/**
 * The downloader retries a host it cannot reach for minutes; one request first turns
 * "offline" into an immediate, clear error. For a URL it also catches 404 before anything
 * is written.
 */
async function checkReachable(source: ModelSource, request: DownloadRequest): Promise<void> {
  const target = source.kind === "url" ? source.uri : (request.huggingFaceEndpoint ?? DEFAULT_HF_ENDPOINT);
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(target, { method: "HEAD", redirect: "manual", signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout });
  } catch (error) {
    request.signal?.throwIfAborted();
    const host = new URL(target).host;
    const reason = timeout.aborted ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s` : networkReason(error);
    throw unavailable(`cannot reach ${host} (${reason}): check the network connection${source.kind === "url" ? "" : ", or set HF_ENDPOINT to a reachable Hugging Face mirror"}`);
  }
  await response.body?.cancel();
  if (source.kind === "url" && response.status === 404) throw notFound(`${source.uri} answered 404 Not Found: check the address`);
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

/** The downloader's errors, as the one error type with a message that says what to do. */
function describeFailure(error: unknown, source: ModelSource): ModelswapError {
  if (error instanceof ModelswapError) return error;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  const message = error instanceof Error ? error.message : String(error);
  const what = source.kind === "hf-quant" ? `the repository ${source.user}/${source.repo} and the quantisation ${source.quant}` : "the address";
  if (statusCode === 404 || /Cannot get quantization|does not exist/.test(message)) return notFound(`${source.uri} was not found: check ${what}`);
  if (statusCode === 401 || statusCode === 403) {
    return permissionDenied(`${source.uri} needs access rights (HTTP ${statusCode}): for a gated Hugging Face repository accept its terms and set HF_TOKEN`);
  }
  if (typeof statusCode === "number") return unavailable(`${source.uri}: the server answered HTTP ${statusCode}; try again later`);
  if (/fetch failed|Failed to fetch manifest/.test(message)) return unavailable(`${source.uri}: ${message}. Check the network connection.`);
  return new ModelswapError(GrpcStatus.UNKNOWN, `${source.uri}: download failed: ${message}`);
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
