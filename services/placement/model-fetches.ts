import { spawn, type ChildProcess } from "node:child_process";
import { stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { failedPrecondition, ModelswapError, unavailable } from "../../common/errors.js";
import { INTERNAL_SECRET_ENV } from "../../common/internal-auth/internal-env.js";
import type { Logger } from "../../common/logger.js";
import { FetchReport } from "../../gen/modelswap/v1/runner.js";
import type { DownloadOrder } from "./placement-types.js";
import { stopChildren } from "../../common/stop-children.js";
import { boundedText } from "../../common/bounded-text.js";

const FETCH_MAIN = fileURLToPath(new URL("../runner/fetch-main.js", import.meta.url));
const MAX_MESSAGE_LENGTH = 1000;

/** What a download process reported, for the core (placement-core.ts: downloadProgress / downloadDone / downloadFailed). */
export type FetchEvent =
  | { kind: "progress"; model: string; bytes: number; totalBytes: number }
  | { kind: "done"; model: string; file: { bytes: number; mtimeMs: number } }
  | { kind: "failed"; model: string; error: ModelswapError };

/**
 * Starts and ends model download processes (services/runner/fetch-main.ts: node-llama-cpp's
 * downloader, which placement must not import) and turns their IPC reports into typed
 * events. One process per model file; knows nothing about waiters.
 */
export class ModelFetches {
  /** Download processes still running (one that reported its end may still be exiting while the next try starts). */
  private readonly children = new Set<ChildProcess>();
  private readonly listeners: ((event: FetchEvent) => void)[] = [];
  private stopping = false;

  constructor(
    private readonly options: {
      logger: Logger;
      env?: NodeJS.ProcessEnv;
      /** A download with no new byte for this long fails with UNAVAILABLE (what arrived is kept); default the download process's 60 s. */
      stallTimeoutMs?: number;
    },
  ) {}

  onEvent(listener: (event: FetchEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Downloads `order.source` to `order.path`; exactly one done or failed event follows. The core starts one download per model at a time. */
  start(order: DownloadOrder): void {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env };
    delete env[INTERNAL_SECRET_ENV];
    const args = [FETCH_MAIN, "--source", order.source, "--dir", path.dirname(order.path), ...(order.sha256 ? ["--sha256", order.sha256] : [])];
    if (this.options.stallTimeoutMs !== undefined) args.push("--stall-timeout-ms", String(this.options.stallTimeoutMs));
    const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit", "ipc"], env });
    this.children.add(child);
    let ended = false;
    const end = (event: FetchEvent) => {
      if (ended || this.stopping) return;
      ended = true;
      this.emit(event);
    };
    child.on("message", (raw: unknown) => {
      const report = FetchReport.fromJSON(raw).report;
      if (ended || !report) return;
      switch (report.$case) {
        case "progress":
          return this.emit({ kind: "progress", model: order.model, bytes: report.value.bytes, totalBytes: report.value.totalBytes });
        case "done":
          ended = true;
          // A model split into several files lands as <name>-00001-of-N: not the one file the catalog loads.
          if (path.resolve(report.value.path) !== path.resolve(order.path)) {
            const error = failedPrecondition(`${order.source} was downloaded to ${report.value.path}, not ${order.path} (a model split into several files?); point the model's path at that file`);
            return this.stopping || this.emit({ kind: "failed", model: order.model, error });
          }
          // The core charges and loads what is on disk now: the file's own size and mtime.
          return void stat(order.path).then(
            (file) => this.stopping || this.emit({ kind: "done", model: order.model, file: { bytes: file.size, mtimeMs: file.mtimeMs } }),
            () => this.stopping || this.emit({ kind: "failed", model: order.model, error: unavailable(`the download of ${order.source} finished but ${order.path} is not there; try again`) }),
          );
        case "failed":
          return end({ kind: "failed", model: order.model, error: new ModelswapError(knownCode(report.value.code), boundedText(report.value.message, MAX_MESSAGE_LENGTH)) });
      }
    });
    // "close", not "exit": it comes after the IPC channel delivered the last report.
    child.once("close", (code, signal) => {
      this.children.delete(child);
      this.options.logger.info("download_process_exit", { model: order.model, code, signal });
      end({ kind: "failed", model: order.model, error: unavailable(`the download of ${order.source} stopped (exit code ${code}, signal ${signal}) before it finished; see placement's log and try again`) });
    });
    child.once("error", (error) => {
      this.options.logger.error("download_spawn_failed", { model: order.model, error });
      end({ kind: "failed", model: order.model, error: unavailable(`the download process for ${order.source} could not start (${error.message}); see placement's log`) });
    });
  }

  /** Ends every download (what arrived stays on disk: the next start resumes it) and waits for the processes to exit. */
  async stopAll(timeoutMs = 3000): Promise<void> {
    this.stopping = true;
    await stopChildren(this.children.values(), timeoutMs);
  }

  private emit(event: FetchEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

/** A status code from the download process, or UNKNOWN when it is not one. */
function knownCode(code: number): GrpcStatus {
  return Number.isInteger(code) && code > 0 && code <= 16 ? (code as GrpcStatus) : GrpcStatus.UNKNOWN;
}

