import { readFileSync } from "node:fs";
import { ConfigError } from "../common/config/config-error.js";
import type { TlsConfig } from "../common/config/config-types.js";

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** The PEM certificate chain and private key of tls.cert / tls.key; ConfigError naming the file when one cannot be read. */
export function readTlsFiles(tls: TlsConfig): TlsFiles {
  const read = (file: string, field: string) => {
    let pem: Buffer;
    try {
      pem = readFileSync(file);
    } catch (error) {
      throw new ConfigError(`${field}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"}); give a PEM file readable by modelswap`);
    }
    if (!pem.includes("-----BEGIN ")) throw new ConfigError(`${field}: ${file} is not a PEM file (no "-----BEGIN" line)`);
    return pem;
  };
  return { cert: read(tls.certPath, "tls.cert"), key: read(tls.keyPath, "tls.key") };
}
