import type { ModelFile } from "./records.js";

/**
 * What a cold model's file needs before the model can be estimated and loaded: nothing (it
 * is on disk, or there is no source to fetch it from and the load reports it), a download
 * to start, or a download in progress to wait for. Pure.
 */
export type DownloadStep = "none" | "start" | "wait";

export function downloadStep(file: ModelFile, hasSource: boolean): DownloadStep {
  if (file.state === "downloading") return "wait";
  if (file.state === "missing" && hasSource) return "start";
  return "none";
}
