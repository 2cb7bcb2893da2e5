import { parseArgs } from "node:util";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { ModelswapError, unavailable } from "../../common/errors.js";
import { FetchReport } from "../../gen/modelswap/v1/runner.js";
import { download } from "./model-downloader.js";

/**
 * Model download process entry. Placement starts one when a model's file is missing and its
 * catalog path names a source (hf:… or a URL): it runs node-llama-cpp's downloader
 * (model-downloader.ts) into `--dir` (checking `--sha256` when given) and reports to
 * placement over IPC, one FetchReport (proto JSON) per message: progress (the latest at most
 * every PROGRESS_INTERVAL_MS, and the last byte), then `done` or `failed`; then it exits.
 * SIGTERM, or no new byte for `--stall-timeout-ms`, stops the download keeping what
 * arrived, so that the next try resumes it.
 */
const PROGRESS_INTERVAL_MS = 200;

const { values } = parseArgs({
  options: { source: { type: "string" }, dir: { type: "string" }, sha256: { type: "string" }, "stall-timeout-ms": { type: "string", default: "60000" } },
  strict: true,
});
const stallTimeoutMs = Number(values["stall-timeout-ms"]);
if (!values.source || !values.dir || !process.send || !(stallTimeoutMs > 0)) {
  process.stderr.write("fetch-main needs --source SOURCE --dir DIR [--sha256 HEX] [--stall-timeout-ms MS] and an IPC channel (placement starts it itself)\n");
  process.exit(2);
}
const source = values.source;
const huggingFaceEndpoint = process.env.HF_ENDPOINT || undefined;

const report = (message: FetchReport) =>
  new Promise<void>((resolve) => {
    if (!process.connected) return resolve();
    process.send!(FetchReport.toJSON(message), undefined, {}, () => resolve());
  });

const stop = new AbortController();
process.once("SIGTERM", () => stop.abort());
// Ctrl-C in placement's terminal reaches this process too: placement stops it (SIGTERM) itself.
process.on("SIGINT", () => undefined);
// Placement went away: nobody is left to report to.
process.once("disconnect", () => stop.abort());

// A host that stops sending (a hung connection) would hold the waiters forever: give up, keeping what arrived.
let stalled = false;
const watchdog = setTimeout(() => {
  stalled = true;
  stop.abort();
}, stallTimeoutMs);
const fed = () => watchdog.refresh();

// Progress is throttled: the first report at once, then the latest at most every PROGRESS_INTERVAL_MS (a byte count once).
let latest = { bytes: 0, totalBytes: 0 };
let sentBytes = -1;
let lastSentMs = Number.NEGATIVE_INFINITY;
let pending: NodeJS.Timeout | undefined;
const sendLatest = () => {
  pending = undefined;
  if (latest.bytes === sentBytes) return;
  sentBytes = latest.bytes;
  lastSentMs = performance.now();
  void report({ report: { $case: "progress", value: latest } });
};
try {
  const file = await download({
    source,
    dir: values.dir,
    expectedSha256: values.sha256,
    huggingFaceEndpoint,
    signal: stop.signal,
    onProgress: ({ bytes, totalBytes }) => {
      if (bytes > latest.bytes) fed();
      latest = { bytes, totalBytes };
      if (pending) return;
      const waitMs = lastSentMs + PROGRESS_INTERVAL_MS - performance.now();
      if (waitMs <= 0) sendLatest();
      else pending = setTimeout(sendLatest, waitMs);
    },
  });
  clearTimeout(pending);
  latest = { bytes: file.bytes, totalBytes: file.bytes };
  sendLatest();
  await report({ report: { $case: "done", value: { path: file.path, bytes: file.bytes } } });
} catch (error) {
  clearTimeout(pending);
  const failure = stalled
    ? unavailable(`${source}: the host sent nothing for ${stallTimeoutMs / 1000} s (at ${latest.bytes} bytes); what arrived is kept, and the next request resumes the download`)
    : error instanceof ModelswapError
      ? error
      : new ModelswapError(GrpcStatus.UNKNOWN, `download of ${source} failed: ${error instanceof Error ? error.message : String(error)}`);
  await report({ report: { $case: "failed", value: { code: failure.code, message: failure.message } } });
}
clearTimeout(watchdog);
process.disconnect?.();
process.exit(0);
