import { open } from "node:fs/promises";

const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Reads a file sequentially so the kernel keeps it in page cache: the next load of
 * that model then reads from memory, not disk. Returns bytes read.
 */
export async function readIntoPageCache(path: string, signal?: AbortSignal): Promise<number> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let total = 0;
    while (!signal?.aborted) {
      const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  } finally {
    await file.close();
  }
}
