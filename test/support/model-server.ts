import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the server answered, as the test inspects it. */
export interface ServedRequest {
  method: string;
  path: string;
  /** The Range header's first and last byte, when the request had one. */
  range: { start: number; end: number } | undefined;
  /** Body bytes written before the response ended or was cut. */
  bytesSent: number;
  cut: boolean;
  stalled: boolean;
}

export interface ModelServerFile {
  bytes: Buffer;
  /** Cut the connection of the first GET with a Range header after this many body bytes. */
  cutFirstRangeAfter?: number;
  /** Send headers but no body (and never end) for GETs whose Range starts at or after this byte: a download that hangs there. */
  stallRangesFrom?: number;
  /** Hold a GET's body at this byte of the file until `until` resolves, then send the rest: a download the test sees in progress. */
  pauseAt?: { byte: number; until: Promise<void> };
}

/**
 * A loopback HTTP file server that answers like a model host: HEAD, GET, Range requests
 * (206 with Content-Range), 404 for anything else; and, for `hf:` sources, a Hugging Face
 * API subset (`/v2/<user>/<repo>/manifests/<quant>` and `/<user>/<repo>/resolve/main/<file>`).
 */
export interface ModelServer {
  url: string;
  requests: ServedRequest[];
  /** Serve `file` at `path` (e.g. "/models/stories.gguf"). */
  serve(path: string, file: ModelServerFile): void;
  /** Make `hf:<user>/<repo>:<quant>` resolve to `fileName` in that repository (served with serve()). */
  manifest(user: string, repo: string, quant: string, fileName: string): void;
  /** Resolves with the first request (seen or to come) that matches. */
  waitForRequest(predicate: (request: ServedRequest) => boolean): Promise<ServedRequest>;
  /** Ends stalled responses and closes the server. */
  close(): Promise<void>;
}

export async function startModelServer(): Promise<ModelServer> {
  const files = new Map<string, ModelServerFile & { rangeCuts: number }>();
  const manifests = new Map<string, string>();
  const requests: ServedRequest[] = [];
  const stalled = new Set<ServerResponse>();
  const waiters = new Set<() => void>();

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const range = parseRange(request.headers.range);
    const record: ServedRequest = { method: request.method ?? "GET", path, range, bytesSent: 0, cut: false, stalled: false };
    requests.push(record);
    const manifest = /^\/v2\/([^/]+)\/([^/]+)\/manifests\/([^/]+)$/.exec(path);
    if (manifest) {
      const fileName = manifests.get(`${manifest[1]}/${manifest[2]}:${manifest[3]!.toUpperCase()}`);
      if (!fileName) return response.writeHead(404).end("no such quantization");
      return response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ggufFile: { rfilename: fileName } }));
    }
    const file = files.get(path);
    if (!file) return response.writeHead(404, { "content-type": "text/plain" }).end("not found");
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? file.bytes.length - 1, file.bytes.length - 1);
    const body = file.bytes.subarray(start, end + 1);
    const headers = { "accept-ranges": "bytes", "content-type": "application/octet-stream", "content-length": String(body.length) };
    if (range) response.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${file.bytes.length}` });
    else response.writeHead(200, headers);
    if (request.method === "HEAD") return response.end();
    if (range && file.stallRangesFrom !== undefined && start >= file.stallRangesFrom) {
      record.stalled = true;
      stalled.add(response);
      response.flushHeaders();
      for (const waiter of [...waiters]) waiter();
      return;
    }
    const pause = file.pauseAt && file.pauseAt.byte > start && file.pauseAt.byte <= end ? file.pauseAt : undefined;
    if (pause) {
      const held = pause.byte - start;
      response.write(body.subarray(0, held));
      void pause.until.then(() => response.write(body.subarray(held), () => {
        record.bytesSent = body.length;
        response.end();
      }));
      return;
    }
    let limit = body.length;
    let cut = false;
    if (range && file.cutFirstRangeAfter !== undefined && file.rangeCuts === 0 && file.cutFirstRangeAfter < body.length) {
      file.rangeCuts++;
      limit = file.cutFirstRangeAfter;
      cut = true;
    }
    response.write(body.subarray(0, limit), () => {
      record.bytesSent = limit;
      if (cut) {
        record.cut = true;
        response.destroy();
      } else response.end();
    });
  };

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    serve: (path, file) => void files.set(path, { ...file, rangeCuts: 0 }),
    manifest: (user, repo, quant, fileName) => void manifests.set(`${user}/${repo}:${quant.toUpperCase()}`, fileName),
    waitForRequest: (predicate) =>
      new Promise((resolve) => {
        const check = () => {
          const found = requests.find(predicate);
          if (!found) return;
          waiters.delete(check);
          resolve(found);
        };
        waiters.add(check);
        check();
      }),
    async close() {
      for (const response of stalled) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseRange(header: string | undefined): { start: number; end: number } | undefined {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? "");
  if (!match) return undefined;
  return { start: Number(match[1]), end: match[2] === "" ? Number.MAX_SAFE_INTEGER : Number(match[2]) };
}
