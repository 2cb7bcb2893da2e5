import { formatBytes as formatBinaryBytes } from "../common/format-bytes.js";
import { ModelState } from "../gen/modelswap/v1/inference.js";

/** "-" for unknown (0) sizes, as in `ollama ps`. */
export function formatBytes(bytes: number): string {
  return bytes ? formatBinaryBytes(bytes) : "-";
}

export function formatDuration(ms: number): string {
  if (ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.round(ms / 60_000)}m`;
}

export function stateName(state: ModelState): string {
  switch (state) {
    case ModelState.MODEL_STATE_RESIDENT:
      return "resident";
    case ModelState.MODEL_STATE_LOADING:
      return "loading";
    case ModelState.MODEL_STATE_UNLOADING:
      return "unloading";
    case ModelState.MODEL_STATE_DOWNLOADING:
      return "downloading";
    case ModelState.MODEL_STATE_NOT_DOWNLOADED:
      return "not downloaded";
    default:
      return "not loaded";
  }
}

/** Left-aligned columns, like `ollama ps`. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
