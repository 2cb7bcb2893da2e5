import { randomBytes } from "node:crypto";
import { ConfigError } from "../config/config-error.js";
import { linkSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { InternalSecret } from "./internal-secret.js";

/**
 * The internal secret shared by a standalone placement and gateway (`--secret-file FILE`):
 * read from FILE, or made and written there when FILE does not exist yet (mode 0600, its
 * folder created 0700). Whichever process comes first makes it; the file appears whole
 * (written aside, then hard-linked into place, which fails if another process won).
 * A file that others may read or write is refused, as ssh refuses such a key.
 */
export function secretFromFile(file: string): InternalSecret {
  const existing = readSecretFile(file);
  if (existing) return existing;
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const aside = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const secret = InternalSecret.random();
  try {
    writeFileSync(aside, secret.toText() + "\n", { mode: 0o600, flag: "wx" });
    linkSync(aside, file);
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw new ConfigError(`cannot write the internal secret file ${file}: ${(error as Error).message}`);
    return readSecretFile(file)!;
  } finally {
    rmSync(aside, { force: true });
  }
}

function readSecretFile(file: string): InternalSecret | undefined {
  let stat;
  try {
    stat = lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(`cannot read the internal secret file ${file}: ${(error as Error).message}`);
  }
  if (!stat.isFile()) throw new ConfigError(`the internal secret file ${file} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new ConfigError(`the internal secret file ${file} is readable or writable by others (mode ${(stat.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
  return InternalSecret.fromText(readFileSync(file, "utf8"), `the internal secret file ${file}`);
}
