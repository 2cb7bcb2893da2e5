import type { ModelFile } from "./records.js";

/**
 * What a cold model's file needs before the model can be estimated and loaded: nothing (it
 * is on disk, or there is no source to fetch it from and the load reports it), a download
 * to start, a download in progress to wait for, or a free download slot to wait for
 * (`running` downloads already take all `maxDownloads`). Pure.
 */
export type DownloadStep = "none" | "start" | "wait" | "wait_for_slot";

export function downloadStep(file: ModelFile, hasSource: boolean, running: number, maxDownloads: number): DownloadStep {
  if (file.state === "downloading") return "wait";
  if (file.state === "missing" && hasSource) return running < maxDownloads ? "start" : "wait_for_slot";
  return "none";
}

/** A request for this model waits on the network (its file is being, or is to be, fetched), not on memory. */
export function waitsForFile(file: ModelFile, hasSource: boolean): boolean {
  return file.state === "downloading" || (file.state === "missing" && hasSource);
}
