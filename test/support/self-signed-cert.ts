import { execFileSync } from "node:child_process";
import path from "node:path";

/** Writes a P-256 self-signed certificate for 127.0.0.1 and localhost (openssl) into `directory`. */
export function writeSelfSignedCert(directory: string): { cert: string; key: string } {
  const cert = path.join(directory, "cert.pem");
  const key = path.join(directory, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert,
  ], { stdio: "ignore" });
  return { cert, key };
}
