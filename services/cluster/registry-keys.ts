/** Where the registry lives in etcd, under the configured prefix (cluster.prefix). */
export const registryKeys = {
  /** Box records, one per box, each held by that box's lease. */
  boxes: (prefix: string) => `${prefix}boxes/`,
  box: (prefix: string, box: string) => `${prefix}boxes/${box}`,
  /** The box chosen to load a cold model: created once in a transaction, held by a short lease. */
  load: (prefix: string, model: string) => `${prefix}load/${model}`,
};
