import { spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";

/** A model file's pages in page cache, and plain reads of it (Linux: fincore, dd). */

/** Bytes of `file` in page cache (util-linux fincore), or undefined where fincore is missing. */
export function residentInPageCache(file: string): number | undefined {
  const out = spawnSync("fincore", ["--bytes", "--noheadings", "--output", "RES", file], { encoding: "utf8" });
  if (out.status !== 0) return undefined;
  const value = Number(out.stdout.trim());
  return Number.isFinite(value) ? value : undefined;
}

/** Drops one file from page cache. Returns the method that worked, or undefined. */
export function dropFromPageCache(file: string): string | undefined {
  // flush any dirty pages first (forged files may still be dirty), then drop the clean ones
  spawnSync("dd", [`of=${file}`, "oflag=nocache", "conv=notrunc,fdatasync", "count=0"], { stdio: "ignore" });
  spawnSync("dd", [`if=${file}`, "iflag=nocache", "count=0"], { stdio: "ignore" });
  const after = residentInPageCache(file);
  if (after !== undefined && after < statSync(file).size * 0.02) return "dd iflag=nocache";
  try {
    spawnSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "1");
    const again = residentInPageCache(file);
    if (again === undefined || again < statSync(file).size * 0.02) return "/proc/sys/vm/drop_caches";
  } catch {
    // not permitted
  }
  return undefined;
}

/** Reads `file` sequentially in 4 MiB chunks (which also puts it in page cache); milliseconds taken. */
export async function readWholeFile(file: string): Promise<number> {
  const started = performance.now();
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    let position = 0;
    while (true) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return performance.now() - started;
}
