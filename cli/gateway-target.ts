import { readFileSync } from "node:fs";
import { credentials, Metadata, type ChannelCredentials } from "@grpc/grpc-js";

/** Where client commands connect, and how: TLS when a CA is given, the API key on every call. */
export interface GatewayTarget {
  address: string;
  credentials: ChannelCredentials;
  /** Metadata for one call (`authorization: Bearer <key>` when a key is set). */
  metadata(): Metadata;
}

export function gatewayTarget(address: string, apiKey: string | undefined, tlsCaFile: string | undefined): GatewayTarget {
  let channel = credentials.createInsecure();
  if (tlsCaFile) {
    let ca: Buffer;
    try {
      ca = readFileSync(tlsCaFile);
    } catch (error) {
      throw new Error(`cannot read the CA certificate ${tlsCaFile} (--tls-ca / MODELSWAP_TLS_CA): ${(error as NodeJS.ErrnoException).code ?? "error"}`);
    }
    channel = credentials.createSsl(ca);
  }
  return {
    address,
    credentials: channel,
    metadata: () => {
      const metadata = new Metadata();
      if (apiKey) metadata.set("authorization", `Bearer ${apiKey}`);
      return metadata;
    },
  };
}
