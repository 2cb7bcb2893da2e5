import { open } from "node:fs/promises";

const GGUF_MAGIC = Buffer.from("GGUF", "latin1");

/**
 * Refuses a path that is not a readable regular file starting with the GGUF magic, before
 * node-llama-cpp parses it (whose errors quote the bytes it found). Messages name the path
 * and the reason, never anything read from the file.
 */
export async function checkGgufFile(path: string): Promise<void> {
  let file;
  try {
    file = await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? `no file at ${path}` : code === "EACCES" ? `cannot read ${path} (permission denied)` : `cannot open ${path} (${code ?? "error"})`);
  }
  try {
    if (!(await file.stat()).isFile()) throw new Error(`${path} is not a regular file`);
    const head = Buffer.alloc(GGUF_MAGIC.length);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    if (bytesRead !== head.length || !head.equals(GGUF_MAGIC)) throw new Error(`${path} is not a GGUF file`);
  } finally {
    await file.close();
  }
}
