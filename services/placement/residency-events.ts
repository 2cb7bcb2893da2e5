import { formatBytes } from "../../common/format-bytes.js";
import type { ResidencyEvent } from "../../gen/modelswap/v1/admin.js";
import type { ResidencyEventRecord } from "./placement-types.js";
import type { UnloadReason } from "./records.js";

/** Why a model leaves, for people: "evicted by lru for big2", "idle ttl", "over budget by 12.0 MiB". */
export function describeUnloadReason(reason: UnloadReason): string {
  switch (reason.cause) {
    case "evicted":
      return `evicted by ${reason.policy ?? "policy"} for ${reason.forModel ?? "another model"}`;
    case "idle_ttl":
      return "idle ttl";
    case "admin_unload":
      return "admin unload";
    case "extra_replica":
      return "idle extra replica";
    case "over_budget": {
      const over = [
        (reason.overBytes ?? 0) > 0 || reason.overGpuBytes === undefined ? `budget by ${formatBytes(reason.overBytes ?? 0)}` : "",
        reason.overGpuBytes !== undefined ? `gpu_budget by ${formatBytes(reason.overGpuBytes)}` : "",
      ].filter(Boolean);
      return `over ${over.join(" and ")} after a load measured more than estimated`;
    }
    case "runner_recycled":
      return reason.forModel ? `runner recycled to return memory it kept, for ${reason.forModel}` : "runner recycled to return memory it kept";
  }
}

/** The public `WatchStatus` form of a residency event. */
export function toWireEvent(event: ResidencyEventRecord): ResidencyEvent {
  const wire: ResidencyEvent = {
    timeUnixMs: event.timeMs,
    kind: event.kind,
    model: "model" in event ? event.model : "",
    reason: "",
    bytes: 0,
    queueDepth: event.queueDepth,
    runnerId: "runnerId" in event ? event.runnerId : "",
    cause: "",
    policy: "",
    forModel: "",
  };
  switch (event.kind) {
    case "queued":
      return { ...wire, reason: event.waiterKind };
    case "dequeued":
      return { ...wire, reason: "cancelled" };
    case "loading":
      return {
        ...wire,
        bytes: event.bytes,
        reason: event.overcommittedBytes > 0 ? `overcommitted: ${formatBytes(event.bytes + event.overcommittedBytes)} served from mmap and swap` : "",
      };
    case "loaded":
      return { ...wire, bytes: event.measuredBytes, reason: event.timings ? `${Math.round(event.timings.loadMs)} ms` : "runner re-registered" };
    case "load_failed":
      return { ...wire, reason: event.reason };
    case "unloading":
      return {
        ...wire,
        // A policy's eviction keeps its own kind: it is what `watch` users look for.
        kind: event.reason.cause === "evicted" ? "evicted" : "unloading",
        bytes: event.bytes,
        reason: describeUnloadReason(event.reason),
        cause: event.reason.cause,
        policy: event.reason.policy ?? "",
        forModel: event.reason.forModel ?? "",
      };
    case "unloaded":
      return { ...wire, bytes: event.rssAfterBytes, reason: describeUnloadReason(event.reason), cause: event.reason.cause, policy: event.reason.policy ?? "", forModel: event.reason.forModel ?? "" };
    case "runner_started":
      return { ...wire, bytes: event.rssBytes };
    case "runner_exited":
      return { ...wire, model: event.models.join(","), reason: event.expected ? "stopped" : `crashed (exit code ${event.exitCode})` };
    case "pinned":
    case "unpinned":
      return { ...wire, reason: "admin" };
    case "downloading":
      return { ...wire, reason: `from ${event.source} to ${event.path}` };
    case "downloaded":
      return { ...wire, bytes: event.bytes, reason: `${Math.round(event.downloadMs)} ms` };
    case "download_failed":
      return { ...wire, reason: event.reason };
  }
}
