/** What a load (swap-in) costs: a fixed part (process, context) plus reading the weights. */
export interface LoadCostModel {
  fixedMs: number;
  diskBytesPerMs: number;
}

export function loadCostMs(bytes: number, model: LoadCostModel): number {
  return model.fixedMs + bytes / model.diskBytesPerMs;
}
